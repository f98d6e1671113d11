"""Parameter bindings of a run and the plan a run is built from.

Owns: checking bindings against a template's declaration (unknown keys, missing values, enums:
AI Core would go DEAD or stay PENDING silently), the "did you mean" hint every binding error
carries, and :class:`RunPlan`. Pure: no store, no I/O.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field

from orchestrator.errors import BindingError
from orchestrator.model import WorkflowSpec


def hint(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1)
    return f"did you mean {close[0]!r}?" if close else f"known: {', '.join(options) or 'none'}"


def bind_parameters(spec: WorkflowSpec, pairs: Sequence[tuple[str, str]], *,
                    ignore_unknown: bool = False) -> dict[str, str]:
    """Parameter values of a run: bindings (later ones win) over defaults, checked against the
    declaration (AI Core would go DEAD or stay PENDING silently on a wrong key)."""
    declared = {p.name: p for p in spec.parameters}
    values: dict[str, str] = {}
    for key, value in pairs:
        if key not in declared:
            if ignore_unknown:
                continue
            raise BindingError(f"unknown parameter {key!r} for executable {spec.executable_id!r}",
                               hint=hint(key, list(declared)) + " (names are case-sensitive)")
        values[key] = value
    for name, p in declared.items():
        if name not in values:
            if p.default is None:
                raise BindingError(f"parameter {name!r} has no default and no value",
                                   hint=f"pass -p {name}=VALUE or bind it in the configuration")
            values[name] = p.default
        if p.enum and values[name] not in p.enum:
            raise BindingError(f"parameter {name!r} = {values[name]!r} is not one of {list(p.enum)}")
    return values


@dataclass
class RunPlan:
    spec: WorkflowSpec
    params: dict[str, str]
    artifact_urls: dict[str, str] = field(default_factory=dict)  # input name -> URL to register
    artifact_ids: dict[str, str] = field(default_factory=dict)  # input name -> existing artifact id
    config_name: str = ""
    document: dict[str, object] = field(default_factory=dict)
    commit_sha: str | None = None  # the git commit the stored template came from
