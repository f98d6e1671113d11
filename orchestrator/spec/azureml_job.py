"""The Azure ML job model every Azure front end produces, and the small grammars it needs.

Owns: the frozen :class:`AzureJob` (one command or sweep job, whichever shape it was read from:
CLI v2 YAML, the 2021 preview YAML, or a REST body old or new), its inputs/outputs, the command's
placeholder grammar (``${{inputs.x}}``, ``${{outputs.y}}``, ``${{search_space.z}}``, the preview's
``{inputs.x}`` and the optional segment ``$[[ … ]]``), ISO-8601 durations (``PT120M``) and the
shapes of data references (``azureml:NAME:VERSION``, ``azureml:NAME@latest``, ARM ids of data and
code versions, ``azureml://datastores/DS/paths/P``, ``wasbs://``/``abfss://``/blob ``https://``).
Resolving those references to artifacts is the control layer's job (:mod:`orchestrator.control.azureml`).
Imports spec.sweep only (for the sweep fields).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from orchestrator.spec.sweep import Distribution, EarlyTermination, Objective, Sampling, SweepLimits

DATA_TYPES = ("uri_file", "uri_folder", "mltable", "mlflow_model", "custom_model", "triton_model")
MODEL_TYPES = ("mlflow_model", "custom_model", "triton_model")

# ${{inputs.x}} / ${{outputs.y}} / ${{search_space.z}}; the 2021 preview wrote {inputs.x}.
PLACEHOLDER = re.compile(r"\$\{\{\s*(inputs|outputs|search_space)\.([A-Za-z0-9_.-]+?)\s*\}\}")
PREVIEW_PLACEHOLDER = re.compile(r"(?<![\${])\{(inputs|outputs|search_space)\.([A-Za-z_][A-Za-z0-9_]*)\}(?!\})")
ANY_PLACEHOLDER = re.compile(r"\$\{\{(.*?)\}\}")
OPTIONAL_SEGMENT = re.compile(r"\$\[\[(.*?)\]\]", re.S)
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}\Z")  # \Z, here and below: "$" also matches before a final "\n"

_ISO = re.compile(r"^P(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?\Z",
                  re.I)


@dataclass(frozen=True)
class JobInput:
    """One input: a literal (``kind`` ``literal``, ``value`` its text) or data (``value`` the path,
    URI or asset reference as written; ``kind`` one of :data:`DATA_TYPES`)."""

    name: str
    kind: str
    value: str
    mode: str = ""
    pointer: str = ""
    optional: bool = False

    @property
    def literal(self) -> bool:
        return self.kind == "literal"


@dataclass(frozen=True)
class JobOutput:
    name: str
    kind: str = "uri_folder"
    pointer: str = ""


@dataclass(frozen=True)
class JobDistribution:
    """``distribution``: run as one process on this machine; the sizes asked for are kept for the report."""

    type: str  # pytorch | tensorflow | mpi | ray
    processes: int = 1  # process_count_per_instance (or the preview's process_count)
    workers: int = 1  # tensorflow worker_count


@dataclass(frozen=True)
class AzureJob:
    """One Azure ML job, read from any of its shapes (``form``: yaml | yaml-preview | rest | rest-preview).

    ``pointers`` maps logical fields (``command``, ``code``, ``inputs``, ``searchSpace``,
    ``samplingAlgorithm``, ``objective``, ``earlyTermination``, ``limits`` …) to where they are in
    the source, for errors found after reading (asset resolution, sweep checks).
    """

    source: str
    form: str
    job_type: str  # command | sweep
    command: str
    name: str = ""
    display_name: str = ""
    experiment_name: str = ""
    description: str = ""
    tags: tuple[tuple[str, str], ...] = ()
    code: str = ""  # a local path (relative to the file's folder), file://, or an asset reference
    inputs: tuple[JobInput, ...] = ()
    outputs: tuple[JobOutput, ...] = ()
    environment_variables: tuple[tuple[str, str], ...] = ()
    timeout: float | None = None
    distribution: JobDistribution | None = None
    recorded: tuple[tuple[str, str], ...] = ()  # (field, value) of environment, compute, resources …
    appended: tuple[str, ...] = ()  # REST 2021 sweeps: "--lr" search-space keys become "--lr VALUE" arguments
    search_space: tuple[tuple[str, Distribution], ...] = ()
    sampling: Sampling = field(default_factory=Sampling)
    objective: Objective | None = None
    early_termination: EarlyTermination | None = None
    limits: SweepLimits = field(default_factory=SweepLimits)
    pointers: tuple[tuple[str, str], ...] = ()

    def pointer(self, key: str) -> str:
        return dict(self.pointers).get(key, "")

    def input(self, name: str) -> JobInput | None:
        return next((i for i in self.inputs if i.name == name), None)


def iso_seconds(value: object) -> float | None:
    """Seconds of ``3600``, ``"3600"``, ``"PT120M"``, ``"P1DT2H"``; None when unreadable."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    m = _ISO.match(text)
    if not m or text.upper() in ("P", "PT") or text.upper().endswith("T"):
        return None
    d, h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    return d * 86400 + h * 3600 + mi * 60 + s


def normalize_command(command: str, missing: frozenset[str] = frozenset()) -> str:
    """The preview's ``{inputs.x}`` as ``${{inputs.x}}``; an optional segment ``$[[ … ]]`` is kept
    inline, or dropped when it names an input in ``missing`` (an optional input without a value), as
    Azure does."""
    command = PREVIEW_PLACEHOLDER.sub(lambda m: "${{" + m.group(1) + "." + m.group(2) + "}}", command)

    def segment(m: re.Match[str]) -> str:
        names = {n for scope, n, _ in references(m.group(1)) if scope == "inputs"}
        return "" if names & missing else m.group(1)

    return OPTIONAL_SEGMENT.sub(segment, command)


def references(command: str) -> list[tuple[str, str, int]]:
    """``(scope, name, offset)`` of every placeholder in an (already normalized) command."""
    return [(m.group(1), m.group(2), m.start()) for m in PLACEHOLDER.finditer(command)]


def unknown_placeholders(command: str) -> list[tuple[str, int]]:
    """``${{…}}`` expressions that are not inputs/outputs/search_space references."""
    return [(m.group(0), m.start()) for m in ANY_PLACEHOLDER.finditer(command) if not PLACEHOLDER.fullmatch(m.group(0))]


# -- data references --------------------------------------------------------------------------
ASSET = re.compile(r"^azureml:(?P<name>[A-Za-z0-9_][A-Za-z0-9_.-]{0,254})(?::(?P<version>[A-Za-z0-9_.-]{1,64})|@(?P<label>latest))?\Z")
ARM_ASSET = re.compile(r"^(?:azureml:)?/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.MachineLearningServices/"
                       r"workspaces/[^/]+/(?P<what>data|datasets|codes|models)/(?P<name>[^/]+)/versions/(?P<version>[^/]+)\Z",
                       re.I)
DATASTORE = re.compile(r"^azureml://(?:subscriptions/[^/]+/resource[gG]roups/[^/]+/(?:providers/Microsoft\.MachineLearningServices/)?"
                       r"workspaces/[^/]+/)?datastores/(?P<ds>[^/]+)/paths/(?P<path>.*)$")
BLOB = re.compile(r"^(?:wasbs?|abfss?)://(?P<container>[^@/]+)@(?P<account>[^./]+)\.(?:blob|dfs)\.core\.windows\.net/?(?P<path>.*)\Z")
HTTPS_BLOB = re.compile(r"^https://(?P<account>[^./]+)\.(?:blob|dfs)\.core\.windows\.net/(?P<container>[^/]+)/?(?P<path>.*)\Z")


@dataclass(frozen=True)
class Reference:
    """What a data (or code) path names. ``kind``: local | file | ai | asset | datastore | blob | https | other."""

    kind: str
    name: str = ""  # asset name / datastore key (``DS`` or ``account/container``)
    version: str = ""  # asset version; "" with label latest
    path: str = ""  # local path, or the path inside a datastore
    text: str = ""


def classify(value: str) -> Reference:
    """Parse a path/URI/reference as written in a job."""
    v = value.strip()
    if m := ASSET.match(v):
        return Reference("asset", m["name"], m["version"] or "", text=v)
    if m := ARM_ASSET.match(v):
        return Reference("asset", m["name"], m["version"], text=v)
    if m := DATASTORE.match(v):
        return Reference("datastore", m["ds"], path=m["path"], text=v)
    if m := BLOB.match(v):
        return Reference("blob", f"{m['account']}/{m['container']}", path=m["path"], text=v)
    if m := HTTPS_BLOB.match(v):
        return Reference("blob", f"{m['account']}/{m['container']}", path=m["path"], text=v)
    low = v.lower()
    if low.startswith("file://"):
        return Reference("file", path=v[len("file://"):], text=v)
    if low.startswith("ai://"):
        return Reference("ai", text=v)
    if low.startswith(("https://", "http://")):
        return Reference("https", text=v)
    if "://" in v or low.startswith(("azureml:", "runs:/", "models:/")):
        return Reference("other", text=v)
    return Reference("local", path=v, text=v)


# -- the command as the local runner runs it --------------------------------------------------
def argo_expr(job: AzureJob, scope: str, name: str) -> str:
    """The template placeholder an Azure reference becomes: literal inputs and search-space values
    are template parameters (user values), data inputs and outputs are artifact paths."""
    if scope == "outputs":
        return f"outputs.artifacts.{name}.path"
    if scope == "inputs":
        inp = job.input(name)
        if inp is not None and not inp.literal:
            return f"inputs.artifacts.{name}.path"
    return f"inputs.parameters.{name}"


def shell_code(job: AzureJob) -> str:
    """The job's command as ``bash -c`` code with ``{{…}}`` template placeholders.

    A placeholder that bash would read as a bare word is put in double quotes, so each value is
    exactly ONE argument (no word splitting, no globbing), whatever it contains; in every other
    context :mod:`orchestrator.plan.splice` hoists it into a variable at run time. Old REST sweeps'
    ``"--lr"`` search-space keys are appended as ``--lr VALUE``.
    """
    from orchestrator.spec import shellctx

    code = PLACEHOLDER.sub(lambda m: "{{" + argo_expr(job, m.group(1), m.group(2)) + "}}", job.command)
    for key in job.appended:
        code = code.rstrip() + f" {key} " + "{{inputs.parameters." + key.lstrip("-") + "}}"
    out: list[str] = []
    pos = 0
    for h in shellctx.shell_holes(code):
        if h.context == shellctx.WORD and not h.numeric and not h.refused and not h.reparsed:
            out.append(code[pos:h.start] + '"' + code[h.start:h.end] + '"')
            pos = h.end
    out.append(code[pos:])
    return "".join(out)
