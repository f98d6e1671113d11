"""``orchestrator sweeps list|show|stop|resume`` against a server (``--server`` / ``ORCHESTRATOR_SERVER``).

Owns: the sweep commands over the AI API extension ``/v2/lm/sweeps`` (list, one sweep with its
``/trials``, ``PATCH targetStatus`` STOPPED or RUNNING), printed as the local commands print them
(:mod:`orchestrator.cli.commands_sweeps`), ids taken whole or as a unique prefix; ``resume`` follows
the sweep to its end as ``run SWEEP.yaml`` does.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from orchestrator.cli.client import Client
from orchestrator.cli.remote_ids import resolve_remote


def cmd_sweeps(args: argparse.Namespace) -> int:
    from orchestrator.cli import commands_sweeps as local
    from orchestrator.cli.commands_remote import _client, follow_sweep

    c = _client(args)
    cmd = getattr(args, "swcmd", None) or "list"
    if cmd == "list":
        rows = c.call("GET", "/v2/lm/sweeps", **{"$top": 10000})["resources"]
        return _out(args, rows) if args.json else (local.print_list(rows) or 0)
    sid = resolve_remote(c, "sweep", args.id)
    path = f"/v2/lm/sweeps/{sid}"
    if cmd == "stop":
        c.call("PATCH", path, {"targetStatus": "STOPPED"})
        row = c.call("GET", path)
        return _out(args, row) if args.json else (print(f"sweep {sid}: stop requested ({row['status']})") or 0)
    if cmd == "resume":
        c.call("PATCH", path, {"targetStatus": "RUNNING"})
        return follow_sweep(c, args, sid)
    data = _with_trials(c, path)
    if getattr(args, "plot", None):
        from orchestrator.cli.sweep_plot import plot

        plot(data, args.plot)
        if not args.json:
            print(f"wrote {args.plot}", file=sys.stderr)
    return _out(args, data) if args.json else (local.print_trials(data) or 0)


def _with_trials(c: Client, path: str) -> dict[str, Any]:
    data = dict(c.call("GET", path))
    data["trials"] = c.call("GET", path + "/trials")["resources"]
    return data


def _out(args: argparse.Namespace, obj: Any) -> int:
    print(json.dumps(obj, indent=2, default=str))
    return 0


__all__ = ["cmd_sweeps"]
