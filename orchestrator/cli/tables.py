"""Tables for people: fit the terminal without ever cutting an id.

Owns: how a list looks on a terminal (or in a pipe with ``COLUMNS`` set). Ids, URLs of outputs
and other ``key`` columns are what people copy, so they are printed whole; the other columns
fold first (the widest first) in a borderless table, then ``drop`` columns are left out (a note says which; ``--json`` has everything), and when even that is too
wide each row is printed as a block of ``name value`` lines. Imports rich only when printing.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

STATE_STYLE = {"SUCCEEDED": "green", "COMPLETED": "green", "FAILED": "red", "DEAD": "red", "RUNNING": "cyan",
               "SKIPPED": "yellow", "OMITTED": "yellow", "CACHED": "green", "STOPPED": "magenta"}
KEY_NAMES = frozenset({"id", "execution", "configuration", "artifact"})


@dataclass(frozen=True)
class Col:
    """A column: ``key`` never folds (ids); ``fold`` is the narrowest a foldable column gets (0: never
    folds); ``drop`` > 0 may be left out when nothing else helps, highest first."""

    name: str
    key: bool = False
    fold: int = 0
    drop: int = 0


def col(spec: str | Col) -> Col:
    """A :class:`Col` from a bare name: id-like names are keys, everything else folds down to 8."""
    if isinstance(spec, Col):
        return spec
    return Col(spec, key=True) if spec in KEY_NAMES else Col(spec, fold=8)


def terminal_width() -> int | None:
    """The width to fit: the terminal's, or ``$COLUMNS`` in a pipe; None = no limit (a pipe)."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    if sys.stdout.isatty():
        try:
            return os.get_terminal_size(sys.stdout.fileno()).columns
        except OSError:
            return 80
    return None


def _fit(cols: list[Col], natural: list[int], overhead: int, width: int) -> list[int] | None:
    """Widths that fit ``width`` by folding foldable columns (widest first), or None."""
    widths = list(natural)
    floor = [min(n, c.fold) if c.fold else n for c, n in zip(cols, natural)]
    excess = sum(widths) + overhead - width
    while excess > 0:
        slack = [(w - f, i) for i, (w, f) in enumerate(zip(widths, floor)) if w > f]
        if not slack:
            return None
        _, i = max(slack)
        widths[i] -= 1
        excess -= 1
    return widths


def layout(cols: list[Col], rows: list[list[str]], width: int | None) -> tuple[str, list[int], list[int]]:
    """(style ``boxed``/``plain``/``records``, the indices of the columns shown, their widths)."""
    natural = [max([len(c.name)] + [len(line) for r in rows for line in (r[i].splitlines() or [""])])
               for i, c in enumerate(cols)]
    shown = list(range(len(cols)))
    if width is None or sum(natural) + 3 * len(cols) + 1 <= width:
        return "boxed", shown, natural
    drops = sorted((i for i, c in enumerate(cols) if c.drop), key=lambda i: -cols[i].drop)
    while True:
        widths = _fit([cols[j] for j in shown], [natural[j] for j in shown], 2 * (len(shown) - 1), width)
        if widths is not None:
            return "plain", shown, widths
        if not drops:
            return "records", list(range(len(cols))), natural
        shown.remove(drops.pop(0))


def print_table(title: str, columns: Sequence[str | Col], rows: list[list[Any]]) -> None:
    """Print ``rows`` under ``title`` so that it fits :func:`terminal_width` (see the module doc)."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    if not rows:
        print(f"{title}: none")
        return
    cols = [col(c) for c in columns]
    cells = [["" if x is None else str(x) for x in r] for r in rows]
    style, shown, widths = layout(cols, cells, terminal_width())
    console = Console(soft_wrap=False, highlight=False,
                      width=max(terminal_width() or 0, sum(widths) + 3 * len(widths) + 1))
    console.print(title, markup=False)
    if style == "records":
        keys = [i for i, c in enumerate(cols) if c.key] or [0]
        label = max(len(c.name) for c in cols)
        for r in cells:
            console.print("  ".join(r[i] for i in keys), markup=False)
            for i, c in enumerate(cols):
                if i not in keys:
                    console.print(f"  {c.name:<{label}}  " + _styled(r[i]), overflow="fold")
        return
    table = Table(box=box.HEAVY_HEAD if style == "boxed" else None, show_edge=style == "boxed",
                  pad_edge=style == "boxed", header_style="bold")
    for i, w in zip(shown, widths):
        c = cols[i]
        table.add_column(c.name, width=w, min_width=w, no_wrap=not c.fold, overflow="fold")
    for r in cells:
        table.add_row(*[_styled(r[i]) for i in shown])
    with console.capture() as captured:
        console.print(table)
    # rich pads every cell to its column; trailing blanks only get in the way of diff and grep
    sys.stdout.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))
    hidden = [c.name for i, c in enumerate(cols) if i not in shown]
    if hidden:
        note(f"(not shown at this width: {', '.join(hidden)}; --json has every field)")


def note(text: str) -> None:
    """A line of prose under a table, wrapped to :func:`terminal_width` (never inside a word)."""
    import textwrap

    width = terminal_width()
    print("\n".join(textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False)) if width else text)


def _styled(text: str) -> str:
    from rich.markup import escape

    style = STATE_STYLE.get(text)
    return f"[{style}]{escape(text)}[/{style}]" if style else escape(text)
