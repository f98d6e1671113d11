"""The REST API: SAP AI API v2 over FastAPI (``orchestrator serve``).

Owns nothing itself; :mod:`orchestrator.api.app` builds the app, the ``routes_*`` modules hold
the resources, :mod:`orchestrator.api.server` runs it. FastAPI is imported only inside this
package (the ``server`` extra), never at ``import orchestrator``.
"""
