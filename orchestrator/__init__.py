"""orchestrator: validate and run SAP AI Core / Argo workflow templates locally.

This module must stay import-light: ``orchestrator --version`` only imports this file.
"""

__version__ = "0.1.0"
