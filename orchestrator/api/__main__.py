"""``python -m orchestrator.api CONFIG_JSON``: the server program ``orchestrator serve`` execs into.

Owns: turning the JSON object the CLI parsed (home, resource group, host, port, workflows, body
cap, intervals) into a running server, with the CLI's exit codes and one-line errors. The CLI
replaces its own process with this one (``os.execv``: same pid, same signals), so the cli folder
never imports the api folder and FastAPI is loaded only by the program that serves.
"""

from __future__ import annotations

import json
import sys

from orchestrator.errors import OrchestratorError


def main(argv: list[str]) -> int:
    """Run the server described by ``argv[0]`` (a JSON object); return the exit code."""
    if len(argv) != 1:
        print("usage: python -m orchestrator.api CONFIG_JSON (use `orchestrator serve`)", file=sys.stderr)
        return 2
    try:
        cfg = json.loads(argv[0])
        if not isinstance(cfg, dict):
            raise TypeError("not an object")
    except (ValueError, TypeError) as exc:
        print(f"error: the server configuration is not a JSON object: {exc}", file=sys.stderr)
        return 2
    try:
        from orchestrator.api.server import serve
        from orchestrator.control.service import Service

        svc = Service(cfg.get("home"), rg=cfg.get("resource_group") or "default")
        return serve(svc, host=cfg.get("host") or "127.0.0.1", port=int(cfg.get("port", 8080)),
                     workflows=list(cfg.get("workflows") or []), body_cap=cfg.get("max_body"),
                     sync_interval=cfg.get("sync_interval"), schedule_interval=cfg.get("schedule_interval"),
                     ui=cfg.get("ui"))
    except OrchestratorError as exc:
        print("\n".join(exc.lines()), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
