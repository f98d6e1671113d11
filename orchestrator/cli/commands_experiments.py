"""CLI commands of experiments and models: ``compare`` and ``models register|list|show|alias|unalias|update``.

Owns: their arguments and what they print (tables via :mod:`orchestrator.cli.tables`, ``--json``
everywhere, ``--csv`` for compare). The rules live in :mod:`orchestrator.control.compare` and
:mod:`orchestrator.control.registry`. Parsers are added by :func:`add_parsers` and import nothing
heavy (``orchestrator --version`` builds them); handlers import the control layer when they run.
Must not import: api.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any


def add_parsers(sub: Any) -> None:
    """``compare`` and ``models``."""
    c = sub.add_parser("compare", help="compare executions: parameters and metric summaries side by side")
    c.add_argument("ids", nargs="*", metavar="ID", help="execution ids or unique id prefixes")
    c.add_argument("--scenario", metavar="S", help="every execution of this scenario")
    c.add_argument("--executable", metavar="E", help="every execution of this executable")
    c.add_argument("--sort", metavar="METRIC[:min|max]",
                   help="best first by this metric (default: the first metric with a declared goal)")
    c.add_argument("--limit", type=int, default=1000, help="at most this many executions, newest (default 1000)")
    c.add_argument("--all-params", action="store_true", help="show equal parameters too (the table shows the "
                   "differing ones)")
    fmt = c.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print the comparison as JSON")
    fmt.add_argument("--csv", action="store_true", help="print one CSV line per execution")
    c.set_defaults(func=cmd_compare)

    m = sub.add_parser("models", help="the model registry: register, list, show, alias, unalias, update")
    ms = m.add_subparsers(dest="modelcmd", metavar="SUBCOMMAND", required=True)
    r = ms.add_parser("register", help="register a model output of a COMPLETED execution as a new version")
    r.add_argument("name", help="model name")
    src = r.add_mutually_exclusive_group(required=True)
    src.add_argument("--execution", metavar="ID", help="the execution (id or prefix) whose model output to register")
    src.add_argument("--artifact", metavar="ID", help="the model artifact (id or prefix)")
    r.add_argument("--output", metavar="NAME", help="which output of --execution (when it has several models)")
    r.add_argument("--description", default="", help="a description of the version")
    r.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE", help="a tag (repeatable)")
    r.add_argument("--alias", metavar="ALIAS", help="also point this alias at the new version")
    lst = ms.add_parser("list", help="registered models, or the versions an execution produced (--execution)")
    lst.add_argument("--execution", metavar="ID", help="the versions registered from this execution (id or prefix)")
    sh = ms.add_parser("show", help="a model and its versions, or one version with its lineage (--version)")
    sh.add_argument("name", help="model name")
    sh.add_argument("--version", metavar="N|ALIAS", help="a version number, an alias or 'latest'")
    al = ms.add_parser("alias", help="point an alias (champion, staging, ...) at a version, atomically")
    al.add_argument("name", help="model name")
    al.add_argument("alias", help="alias name")
    al.add_argument("version", type=int, help="version number")
    al.add_argument("--expect", type=int, metavar="N", help="only if the alias still names version N")
    un = ms.add_parser("unalias", help="remove an alias")
    un.add_argument("name", help="model name")
    un.add_argument("alias", help="alias name")
    up = ms.add_parser("update", help="set the description or tags of a version")
    up.add_argument("name", help="model name")
    up.add_argument("version", type=int, help="version number")
    up.add_argument("--description", help="the new description")
    up.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE",
                    help="set a tag; KEY= removes it (repeatable)")
    for p in (r, lst, sh, al, un, up):
        p.add_argument("--json", action="store_true", help="print the result as JSON")
    m.set_defaults(func=cmd_models)


def _service(args: argparse.Namespace) -> Any:
    from orchestrator.cli.commands import _service as service

    return service(args, create=False)


def _dump(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def _dump_rows(obj: dict[str, Any], key: str) -> None:
    """``obj`` as JSON with one compact line per item of ``obj[key]``: readable, diffable, and
    written by the C encoder (``indent`` would take the pure-Python one: 3x slower on 1,000 rows)."""
    enc = json.JSONEncoder(ensure_ascii=False, default=str)
    head = {k: v for k, v in obj.items() if k != key}
    out = sys.stdout
    out.write("{\n" + "".join(f"  {enc.encode(k)}: {enc.encode(v)},\n" for k, v in head.items()))
    rows = obj[key]
    out.write(f"  {enc.encode(key)}: [" + ("\n    " if rows else ""))
    out.write(",\n    ".join(enc.encode(r) for r in rows))
    out.write(("\n  " if rows else "") + "]\n}\n")


# ---------------------------------------------------------------------- compare
def _num(value: Any) -> str:
    return "" if value is None else f"{value:.6g}" if isinstance(value, float) else str(value)


def _rg(args: argparse.Namespace) -> str:
    return getattr(args, "resource_group_remote", None) or os.environ.get("ORCHESTRATOR_RESOURCE_GROUP") or "default"


def cmd_compare(args: argparse.Namespace) -> int:
    from orchestrator.control.compare import compare, open_store
    from orchestrator.control.ids import resolve_id

    store, rg = open_store(args.home), _rg(args)
    try:
        ids = [resolve_id(store, rg, "execution", i) for i in args.ids]
        result = compare(store, rg, execution_ids=ids, scenario_id=args.scenario,
                         executable_id=args.executable, sort=args.sort, limit=args.limit)
    finally:
        store.close()
    return compare_out(args, result)


def compare_out(args: argparse.Namespace, result: dict[str, Any]) -> int:
    """The comparison (locally or from the server) as JSON, CSV or a table."""
    if args.json:
        _dump_rows(result, "executions")
    elif args.csv:
        _csv(result)
    else:
        _compare_table(result, args.all_params)
    return 0


def _csv(result: dict[str, Any]) -> None:
    import csv

    w = csv.writer(sys.stdout, lineterminator="\n")
    metrics = result["metrics"]
    w.writerow(["id", "status", "duration", "best", *[f"param:{p}" for p in result["parameters"]],
                *[f"{m}.{k}" for m in metrics for k in ("last", "best", "min", "max", "count")]])
    for r in result["executions"]:
        cells = [r["id"], r["status"], "" if r["duration"] is None else repr(r["duration"]), "1" if r["best"] else ""]
        cells += [r["parameters"].get(p, "") for p in result["parameters"]]
        for m in metrics:
            s = r["metrics"].get(m) or {}
            cells += ["" if s.get(k) is None else repr(s[k]) for k in ("last", "best", "min", "max", "count")]
        w.writerow(cells)


def _compare_table(result: dict[str, Any], all_params: bool) -> None:
    from orchestrator.cli.tables import Col, note, print_table

    params = result["parameters"] if all_params else result["differingParameters"]
    metrics = result["metrics"]
    goals = result["goals"]
    cols = [Col("best"), "id", Col("status"), Col("duration", drop=3)]
    differing = set(result["differingParameters"])
    cols += [Col(f"{p} *" if all_params and p in differing else p, fold=6) for p in params]
    cols += [Col(f"{m} ({goals.get(m, '?')})", fold=8) for m in metrics]
    rows = []
    for r in result["executions"]:
        row: list[Any] = ["*" if r["best"] else "", r["id"], r["status"],
                          "" if r["duration"] is None else f"{r['duration']:.1f}s"]
        row += [r["parameters"].get(p, "-") for p in params]
        for m in metrics:
            s = r["metrics"].get(m)
            if s is None:
                row.append("-")
            elif s["best"] is not None and s["best"] != s["last"]:
                row.append(f"{s['last']:.4g} (best {s['best']:.4g})")
            else:
                row.append(f"{s['last']:.4g}")
        rows.append(row)
    sort = result["sort"]
    title = f"{result['count']} executions" + (f", best first by {sort['metric']} ({sort['goal']})" if sort else "")
    print_table(title, cols, rows)
    if all_params and differing:
        note("* differs between the executions")
    same = [p for p in result["parameters"] if p not in differing]
    if same and not all_params and len(result["executions"]) > 1:
        first = result["executions"][0]["parameters"]
        note("same in all: " + ", ".join(f"{p}={first.get(p, '-')}" for p in same))
    if not sort and metrics:
        note("no metric has a declared goal, so no row is best: --sort METRIC:max (or :min), or declare goals "
             'in the template: metadata.annotations: {orchestrator/metrics: "f1:max,loss:min"}')


# ---------------------------------------------------------------------- models
def cmd_models(args: argparse.Namespace) -> int:
    from orchestrator.control import registry

    svc = _service(args)
    store, rg = svc.store, svc.rg
    sub = args.modelcmd
    if sub == "register":
        before = {v.artifact_id for v in store.list_model_versions(rg, args.name)}
        mv = registry.register(
            store, rg, args.name,
            execution_id=svc.resolve_id("execution", args.execution) if args.execution else None,
            artifact_id=svc.resolve_id("artifact", args.artifact) if args.artifact else None,
            output=args.output, description=args.description, tags=registry.parse_tags(args.tag))
        text = (f"{'already registered as' if mv.artifact_id in before else 'registered'} {mv.model} version "
                f"{mv.version} (artifact {mv.artifact_id}, execution {mv.execution_id})")
        if args.alias:
            registry.set_alias(store, rg, mv.model, args.alias, mv.version)
            mv = store.get_model_version(rg, mv.model, mv.version)
            text += f"; alias {args.alias} -> version {mv.version}"
        return _version_out(args, mv, text)
    if sub == "list":
        if args.execution:
            versions = store.list_model_versions(rg, execution_id=svc.resolve_id("execution", args.execution))
            return _versions_out(args, versions, "model versions of the execution")
        return models_out(args, store.list_models(rg))
    if sub == "show":
        if args.version is None:
            model = store.get_model(rg, registry.check_name(args.name))
            versions = store.list_model_versions(rg, args.name)
            return model_out(args, model, [registry.version_json(v) for v in versions])
        mv = registry.resolve_version(store, rg, args.name, args.version)
        return _show_version(args, svc, mv)
    if sub == "alias":
        return alias_out(args, registry.set_alias(store, rg, args.name, args.alias, args.version,
                                                  expected=args.expect))
    if sub == "unalias":
        return alias_out(args, store.delete_model_alias(rg, args.name, args.alias))
    mv = store.update_model_version(rg, args.name, args.version, description=args.description,
                                    tags=registry.parse_tags(args.tag))
    return _version_out(args, mv, f"updated {mv.model} version {mv.version}")


def models_out(args: argparse.Namespace, models: list[dict[str, Any]]) -> int:
    """Registered models (``aliases`` as {alias: version}) as JSON or a table."""
    if args.json:
        _dump(models)
        return 0
    from orchestrator.cli.tables import Col, print_table

    print_table("models", [Col("name", key=True), Col("latest"), Col("versions"), Col("aliases", fold=12),
                           Col("modified", fold=10, drop=1)],
                [[m["name"], m["latestVersion"], m["versionCount"],
                  ", ".join(f"{a}={v}" for a, v in m["aliases"].items()), m["modifiedAt"][:19]] for m in models])
    return 0


def model_out(args: argparse.Namespace, model: dict[str, Any], versions: list[dict[str, Any]]) -> int:
    """A model and its versions as JSON or text and a table."""
    if args.json:
        _dump({**model, "versions": versions})
        return 0
    print(f"model {model['name']}: {model['versionCount']} version(s), latest {model['latestVersion']}"
          + (f", aliases {', '.join(f'{a}={v}' for a, v in model['aliases'].items())}" if model["aliases"] else ""))
    return versions_out(args, versions, "versions")


def alias_out(args: argparse.Namespace, before: int | None) -> int:
    """What ``models alias`` / ``unalias`` did (``before``: the version the alias named)."""
    if args.modelcmd == "unalias":
        if args.json:
            _dump({"model": args.name, "alias": args.alias, "previousVersion": before})
        else:
            print(f"removed {args.name}@{args.alias} (was version {before})")
        return 0
    if args.json:
        _dump({"model": args.name, "alias": args.alias, "version": args.version, "previousVersion": before})
    else:
        print(f"{args.name}@{args.alias} -> version {args.version}"
              + (f" (was {before})" if before is not None and before != args.version else ""))
    return 0


def _version_out(args: argparse.Namespace, mv: Any, text: str) -> int:
    from orchestrator.control.registry import version_json

    if args.json:
        _dump(version_json(mv))
    else:
        print(text)
    return 0


def _versions_out(args: argparse.Namespace, versions: list[Any], title: str) -> int:
    from orchestrator.control.registry import version_json

    return versions_out(args, [version_json(v) for v in versions], title)


def versions_out(args: argparse.Namespace, versions: list[dict[str, Any]], title: str) -> int:
    """Versions (as ``version_json`` makes them, locally or from the server) as JSON or a table."""
    from orchestrator.cli.tables import Col, print_table

    if args.json:
        _dump(versions)
        return 0
    print_table(title, [Col("model", key=True), Col("version"), "execution", "artifact",
                        Col("aliases", fold=10), Col("created", fold=10, drop=1)],
                [[v["model"], v["version"], v["executionId"], v["artifactId"], ", ".join(v["aliases"]),
                  v["createdAt"][:19]] for v in versions])
    return 0


def _show_version(args: argparse.Namespace, svc: Any, mv: Any) -> int:
    from orchestrator.control.registry import lineage, version_json

    return show_version(args, {**version_json(mv), "lineage": lineage(svc.store, svc.rg, mv)})


def show_version(args: argparse.Namespace, info: dict[str, Any]) -> int:
    """One version with its lineage (locally or from the server) as JSON or text and tables."""
    if args.json:
        _dump(info)
        return 0
    from orchestrator.cli.tables import Col, print_table

    lin = info["lineage"]
    aliases = info["aliases"]
    print(f"{info['model']} version {info['version']}" + (f"  aliases: {', '.join(aliases)}" if aliases else ""))
    print(f"  artifact    {info['artifactId']}  {lin['artifact'].get('url', '(missing)')}")
    print(f"  sha256      {info['sha256']}" + ("" if lin["artifact"].get("digestMatches", False)
                                               else "  (DOES NOT MATCH the artifact now)"))
    ex = lin["execution"]
    print(f"  execution   {ex['id']}  {ex.get('status', '(missing)')}  {ex.get('executableId', '')}")
    if "configuration" in lin:
        print(f"  config      {lin['configuration']['id']}  {lin['configuration']['name'] or ''}")
    if info["description"]:
        print(f"  description {info['description']}")
    for t in info["tags"]:
        print(f"  tag         {t['key']}={t['value']}")
    if lin.get("parameters"):
        print_table("parameters", [Col("name", fold=12), Col("value", fold=12)],
                    [[p["name"], p["value"]] for p in lin["parameters"]])
    if lin.get("metrics"):
        print_table("metrics", [Col("metric", fold=12), Col("last"), Col("min"), Col("max"), Col("points", drop=1)],
                    [[s["name"], _num(s["last"]), _num(s["min"]), _num(s["max"]), s["count"]]
                     for s in lin["metrics"]])
    if lin.get("inputArtifacts"):
        print_table("input artifacts", [Col("key", fold=10), "artifact", Col("kind"), Col("url", fold=16)],
                    [[a["key"], a["artifactId"], a.get("kind", ""), a.get("url", "(missing)")]
                     for a in lin["inputArtifacts"]])
    return 0
