"""The command line: argument parsing, exit codes and printing only — no business rules.

Owns: ``main`` (the ``orchestrator`` console script, :mod:`orchestrator.cli.main`), the command
handlers (``commands*``) and the HTTP client behind ``--server`` (:mod:`orchestrator.cli.client`).
May import: :mod:`orchestrator.control` and everything below it. ``serve`` starts the REST server
as its own program (``python -m orchestrator.api``), so this folder never imports
:mod:`orchestrator.api`. Nothing imports this folder.
"""
