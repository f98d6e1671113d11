"""Values and functions of the expr-lang subset (:mod:`orchestrator.spec.exprlang`).

Owns: the error types, Argo's conversions between expression values (``asInt``, ``asFloat``,
``string``; strict types: a string is never silently a number), how a result is written into a
template (strings as they are, everything else as JSON), and the table of callable functions
(expr-lang built-ins and the sprig functions Argo's examples use). No function reaches the file
system, the environment or the network; sizes are capped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from orchestrator.errors import UsageError
from orchestrator.spec import jsonpath

MAX_ITEMS = 10_000
MAX_STR = 256 * 1024


class ExprLangError(UsageError):
    """An expression that does not parse or cannot be evaluated."""

    code = "INVALID_EXPRESSION"


class Missing(ExprLangError):
    """A variable the expression names has no value (yet)."""


def _eq(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b if isinstance(a, bool) and isinstance(b, bool) else False
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


def _bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    raise ExprLangError(f"expected a boolean, got {_kind(v)} {_short(v)}")


def _number(v: Any) -> int | float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ExprLangError(f"expected a number, got {_kind(v)} {_short(v)} (convert it with asInt or asFloat)")
    return v


def _int(v: Any) -> int:
    if isinstance(v, bool):
        raise ExprLangError("expected an integer, got a boolean")
    if isinstance(v, float):
        return int(v)
    if isinstance(v, int):
        return v
    try:
        return int(str(v).strip())
    except ValueError:
        try:
            f = float(str(v).strip())
        except ValueError:
            raise ExprLangError(f"cannot convert {_short(v)} to an integer") from None
        if not math.isfinite(f):
            raise ExprLangError(f"cannot convert {_short(v)} to an integer") from None
        return int(f)


def _float(v: Any) -> float:
    if isinstance(v, bool):
        raise ExprLangError("expected a number, got a boolean")
    try:
        return float(v if isinstance(v, (int, float)) else str(v).strip())
    except ValueError:
        raise ExprLangError(f"cannot convert {_short(v)} to a float") from None


def _str(v: Any) -> str:
    return v if isinstance(v, str) else to_text(v)


def _list(v: Any) -> list[Any]:
    if isinstance(v, str) and v[:1] == "[":
        try:
            v = json.loads(v)
        except ValueError:
            pass
    if not isinstance(v, list):
        raise ExprLangError(f"expected a list, got {_kind(v)}")
    if len(v) > MAX_ITEMS:
        raise ExprLangError(f"list longer than {MAX_ITEMS} items")
    return v


def _kind(v: Any) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
            dict: "a map", type(None): "nil"}.get(type(v), type(v).__name__)


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def to_text(v: Any) -> str:
    """A result as Argo writes it into the template: strings as they are, everything else as JSON."""
    if isinstance(v, str):
        return v
    if v is None:
        raise ExprLangError("the expression evaluated to nil")
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e21:
        return str(int(v))
    out = json.dumps(v, separators=(",", ":"), ensure_ascii=False)
    if len(out) > MAX_STR:
        raise ExprLangError("result too long")
    return out


def _date(fmt: str, when: str) -> str:
    """sprig.date with a Go layout, for the layouts Argo's examples use."""
    import datetime as _dt

    try:
        t = _dt.datetime.fromisoformat(str(when).replace("Z", "+00:00"))
    except ValueError:
        raise ExprLangError(f"not a timestamp: {_short(when)}") from None
    go = [("2006", "%Y"), ("01", "%m"), ("02", "%d"), ("15", "%H"), ("04", "%M"), ("05", "%S"), ("Jan", "%b"),
          ("Mon", "%a"), ("06", "%y"), ("MST", "%Z")]
    out = fmt
    for g, p in go:
        out = out.replace(g, p)
    return t.strftime(out)


def _jsonpath(doc: Any, path: Any) -> Any:
    if isinstance(doc, str):
        try:
            doc = json.loads(doc)
        except ValueError:
            raise ExprLangError(f"jsonpath: not JSON: {_short(doc)}") from None
    return jsonpath.query(_str(path), doc)


SIMPLE: dict[str, Callable[..., Any]] = {
    "asInt": _int, "int": _int, "asFloat": _float, "float": _float, "string": _str, "toJson": to_text,
    "fromJson": lambda s: json.loads(_str(s)) if len(_str(s)) <= MAX_STR else None,
    "len": lambda v: len(v if isinstance(v, (str, dict)) else _list(v)),
    "abs": lambda v: abs(_number(v)), "upper": lambda s: _str(s).upper(), "lower": lambda s: _str(s).lower(),
    "trim": lambda s, c=None: _str(s).strip(c), "trimPrefix": lambda s, p: _str(s).removeprefix(_str(p)),
    "trimSuffix": lambda s, p: _str(s).removesuffix(_str(p)), "split": lambda s, sep: _list(_str(s).split(_str(sep))),
    "join": lambda v, sep="": _str(sep).join(_str(x) for x in _list(v)), "jsonpath": _jsonpath,
    "max": lambda *v: max(_number(x) for x in (_list(v[0]) if len(v) == 1 else v)),
    "min": lambda *v: min(_number(x) for x in (_list(v[0]) if len(v) == 1 else v)),
    "first": lambda v: _list(v)[0] if _list(v) else None, "last": lambda v: _list(v)[-1] if _list(v) else None,
    "sprig.trim": lambda s: _str(s).strip(), "sprig.upper": lambda s: _str(s).upper(),
    "sprig.lower": lambda s: _str(s).lower(), "sprig.toString": _str, "sprig.toJson": to_text,
    "sprig.add": lambda *v: sum(_int(x) for x in v), "sprig.sub": lambda a, b: _int(a) - _int(b),
    "sprig.mul": lambda *v: math.prod(_int(x) for x in v), "sprig.div": lambda a, b: _int(a) // _int(b) if _int(b) else 0,
    "sprig.max": lambda *v: max(_int(x) for x in v), "sprig.min": lambda *v: min(_int(x) for x in v),
    "sprig.int": _int, "sprig.atoi": _int, "sprig.float64": _float,
    "sprig.contains": lambda sub, s: _str(sub) in _str(s), "sprig.hasPrefix": lambda p, s: _str(s).startswith(_str(p)),
    "sprig.hasSuffix": lambda p, s: _str(s).endswith(_str(p)),
    "sprig.replace": lambda old, new, s: _str(s).replace(_str(old), _str(new)),
    "sprig.default": lambda d, v=None: d if v in (None, "", [], {}, 0, False) else v,
    "sprig.empty": lambda v: v in (None, "", [], {}, 0, False), "sprig.quote": lambda s: json.dumps(_str(s)),
    "sprig.b64enc": lambda s: __import__("base64").b64encode(_str(s).encode()).decode(),
    "sprig.b64dec": lambda s: __import__("base64").b64decode(_str(s).encode()).decode("utf-8", "replace"),
    "sprig.date": _date, "sprig.trunc": lambda n, s: _str(s)[:_int(n)] if _int(n) >= 0 else _str(s)[_int(n):],
}
CLOSURES = ("filter", "map", "all", "any", "none", "count")
FUNCTIONS = set(SIMPLE) | set(CLOSURES)
