"""The CLI of Azure ML job files: ``run job.yml|job.json`` and ``orchestrator assets …``.

Owns: handing an Azure ML job file given to ``run`` to :mod:`orchestrator.control.azureml` (a
command job runs as an ordinary execution with the usual progress and outcome; a sweep job runs
through the sweep engine with its progress), printing the job's recorded-not-built warnings, and
the ``assets`` commands: ``register NAME PATH [--version V]``, ``list``, ``show NAME[:V|@latest]``,
``datastore set NAME DIR | list | remove NAME``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_parsers(sub: Any) -> None:
    a = sub.add_parser("assets", help="Azure ML data assets (azureml:NAME:VERSION) and datastore mappings")
    s = a.add_subparsers(dest="assetcmd", metavar="SUBCOMMAND")
    reg = s.add_parser("register", help="register a file or folder (copied) or an ai:// URL as the next asset version")
    reg.add_argument("name", help="asset name (what azureml:NAME:VERSION refers to)")
    reg.add_argument("source", help="a file or folder path, file:// or ai:// URL")
    reg.add_argument("--version", default="", help="the version (default: the next number)")
    reg.add_argument("--type", dest="azure_type", default="",
                     choices=("uri_file", "uri_folder", "mltable", "mlflow_model", "custom_model", "triton_model"),
                     help="the Azure ML type (default: uri_file for a file, uri_folder for a folder)")
    reg.add_argument("--description", default="", help="a description of the asset version")
    lst = s.add_parser("list", help="registered asset versions")
    lst.add_argument("--json", action="store_true", help="print the list as JSON")
    show = s.add_parser("show", help="what azureml:NAME[:VERSION|@latest] resolves to")
    show.add_argument("ref", help="NAME, NAME:VERSION or NAME@latest")
    show.add_argument("--json", action="store_true", help="print it as JSON")
    ds = s.add_parser("datastore", help="map an Azure datastore or blob container to a local folder")
    dss = ds.add_subparsers(dest="dscmd", metavar="ACTION")
    dset = dss.add_parser("set", help="map NAME (a datastore, or ACCOUNT/CONTAINER of blob URLs) to DIR")
    dset.add_argument("name", help="the datastore (workspaceblobstore) or ACCOUNT/CONTAINER of blob URLs")
    dset.add_argument("dir", help="the local folder its paths resolve in, or ai://SECRET[/PATH] (an object store "
                      "secret: a bucket for type S3)")
    drm = dss.add_parser("remove", help="remove a mapping")
    drm.add_argument("name", help="the datastore or ACCOUNT/CONTAINER")
    dls = dss.add_parser("list", help="the mappings (the home's; a job's .azureml/datastores.json adds its own)")
    dls.add_argument("--json", action="store_true", help="print the mappings as JSON")
    a.set_defaults(func=cmd_assets)


def is_azureml_file(path: str | None) -> bool:
    from orchestrator.control.azureml import job_type

    return job_type(path) is not None


def cmd_run_azureml(args: argparse.Namespace) -> int:
    """``run FILE`` for an Azure ML job file."""
    from orchestrator.cli.commands import _execute, _service
    from orchestrator.control import azureml

    job, warnings = azureml.load_job(args.target)
    if job.job_type == "sweep":
        from orchestrator.cli import commands_sweeps

        commands_sweeps.refuse_run_only_flags(args)
    if not args.quiet:
        for w in warnings:
            print(w.format(), file=sys.stderr)
    svc = _service(args)
    if job.job_type == "sweep":
        from orchestrator.cli import commands_sweeps

        return int(commands_sweeps._finish(
            svc, args, lambda on: azureml.run_sweep_job(svc, args.target, args.artifact, params=args.param, on_event=on)))
    plan = azureml.plan_job(svc, args.target, args.param, args.artifact)
    ex = svc.create(plan)
    return _execute(svc, args, ex, plan, {})


def cmd_run_remote(c: Any, args: argparse.Namespace) -> int:
    """``--server URL run job.yml``: the server checks and runs the job (a command job as an
    execution, a sweep job as a sweep) reading ``code`` and local inputs from the job file's folder,
    so the server must see this machine's files (nothing is uploaded: a refusal says so and how
    else to run it); then this follows it to its end."""
    import os
    import urllib.parse

    from orchestrator.cli.client import RemoteError
    from orchestrator.cli.commands_remote import follow_execution, follow_sweep
    from orchestrator.errors import UsageError, ValidationFailed
    from orchestrator.spec.yamlsafe import load_file

    docs, errs = load_file(args.target)
    if errs:
        raise ValidationFailed(errs)
    folder = os.path.dirname(os.path.abspath(args.target))
    query = urllib.parse.urlencode([("jobDir", folder), ("jobFile", os.path.basename(args.target)),
                                    *(("parameter", p) for p in args.param),
                                    *(("artifact", a) for a in args.artifact)])
    try:
        job = c.call("POST", f"/v2/lm/azureml/jobs?{query}", docs[0].data)
    except RemoteError as exc:
        if "jobDir" not in exc.message and "ORCHESTRATOR_FILE_ROOTS" not in exc.message:
            raise
        # nothing is uploaded: say so, instead of leaving "not a folder on the server's machine" to decode
        raise UsageError(f"{exc.message}; --server does not upload the job's files: the server reads code: and "
                         f"local inputs from {folder} on its own machine",
                         hint="run it here (orchestrator run JOB.yml, without --server), or put the folder on the "
                              "server's machine inside its ORCHESTRATOR_FILE_ROOTS, or register the code there as "
                              "an asset (orchestrator assets register NAME PATH; code: azureml:NAME@latest)") from None
    if job["kind"] == "execution":
        return follow_execution(c, args, job["id"], job.get("executableId", ""))
    return follow_sweep(c, args, job["id"])


def cmd_assets(args: argparse.Namespace) -> int:
    from orchestrator.cli.commands import _service
    from orchestrator.cli.tables import print_table
    from orchestrator.control import azureml_assets as assets
    from orchestrator.spec.azureml_job import Reference

    cmd = getattr(args, "assetcmd", None) or "list"
    if cmd == "datastore":
        svc = _service(args)
        sub = getattr(args, "dscmd", None) or "list"
        if sub == "set":
            print(f"datastore {args.name} -> {assets.set_datastore(svc.home, args.name, args.dir)}")
        elif sub == "remove":
            assets.remove_datastore(svc.home, args.name)
            print(f"removed datastore mapping {args.name}")
        else:
            maps = assets.datastores(svc.home)
            if getattr(args, "json", False):
                print(json.dumps({k: v for k, (v, _src) in maps.items()}, indent=2))
            else:
                print_table("datastore mappings", ["name", "folder"], [[k, v] for k, (v, _s) in sorted(maps.items())])
        return 0
    if cmd == "register":
        svc = _service(args)
        art = assets.register_asset(svc, args.name, args.source, version=args.version, azure_type=args.azure_type,
                                    description=args.description)
        print(f"registered azureml:{args.name}:{dict(art.labels)[assets.VERSION_LABEL]}  artifact {art.id}  {art.url}")
        return 0
    svc = _service(args, create=False)
    if cmd == "show":
        name, _, version = args.ref.partition(":")
        name, _, label = name.partition("@")
        art = assets.resolve_asset(svc.store, svc.rg, Reference("asset", name, version, text=args.ref))
        row = {"name": art.name, "version": dict(art.labels).get(assets.VERSION_LABEL, ""), "id": art.id,
               "url": art.url, "kind": art.kind, "path": str(svc.objects.local_path(svc.rg, art.url))}
        print(json.dumps(row, indent=2) if args.json else "\n".join(f"{k:8} {v}" for k, v in row.items()))
        return 0
    rows = [a for a in svc.store.list_artifacts(svc.rg, scenario_id=assets.SCENARIO, limit=10_000)]
    items = [{"name": a.name, "version": dict(a.labels).get(assets.VERSION_LABEL, ""),
              "type": dict(a.labels).get(assets.TYPE_LABEL, ""), "id": a.id, "url": a.url, "created": a.created_at}
             for a in sorted(rows, key=lambda a: (a.name, a.created_at))]
    if getattr(args, "json", False):
        print(json.dumps(items, indent=2))
    else:
        print_table("assets", ["name", "version", "type", "id", "url"],
                    [[i["name"], i["version"], i["type"], i["id"], i["url"]] for i in items])
    return 0
