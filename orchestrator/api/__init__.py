"""The REST API: SAP AI API v2 over FastAPI (``orchestrator serve`` = ``python -m orchestrator.api``).

Owns: :mod:`~orchestrator.api.app` (the gate, error mapping, router wiring), one ``routes_*``
module per resource group of routes, payload models (:mod:`~orchestrator.api.models`), wire
encoding (:mod:`~orchestrator.api.wire`), response builders (:mod:`~orchestrator.api.responses`)
and the server process (:mod:`~orchestrator.api.server`, :mod:`orchestrator.api.__main__`).
Inside: server -> app -> routes -> deps/models/responses -> wire (an import contract).
May import: control and everything below it. Never imports :mod:`orchestrator.cli`, and nothing
but the ``serve`` program imports this folder. FastAPI is imported only here (the ``server`` extra).
"""
