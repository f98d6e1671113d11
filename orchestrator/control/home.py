"""Where the home (store, objects, logs) of a command is, found the way git finds ``.git``.

Owns: the precedence ``--home`` > ``$ORCHESTRATOR_HOME`` > the nearest ``.orchestrator`` upward
from the current directory > a new ``./.orchestrator`` (only commands that write create it), and
the error a read command gives when there is no store: where it looked and how to get one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import NotFound

HOME_NAME = ".orchestrator"
DB_NAME = "orchestrator.db"


@dataclass(frozen=True)
class HomeChoice:
    """Which home a command uses, how it was chosen (``--home``, ``$ORCHESTRATOR_HOME``, ``found``,
    ``new``) and, for a search, the directory it started from."""

    path: Path
    how: str
    searched_from: str = ""

    @property
    def has_store(self) -> bool:
        return (self.path / DB_NAME).is_file()

    def missing(self) -> NotFound:
        """The error of a read command that found no store: where it looked and how to get one."""
        where = {"--home": f"at {self.path} (--home)", "$ORCHESTRATOR_HOME": f"at {self.path} ($ORCHESTRATOR_HOME)",
                 "found": f"in {self.path} (the nearest {HOME_NAME} above {self.searched_from})"}.get(
            self.how, f": no {HOME_NAME} directory in {self.searched_from} or any parent, "
                      "and $ORCHESTRATOR_HOME is not set")
        if self.how in ("--home", "$ORCHESTRATOR_HOME"):  # a write command would create the store right there
            hint = (f"`orchestrator init` (or `orchestrator run FILE`) creates it at {self.path}; "
                    f"or point {self.how} at an existing one")
        else:
            hint = ("`orchestrator run FILE` or `orchestrator init` creates ./.orchestrator; "
                    "or point --home / $ORCHESTRATOR_HOME at an existing one")
        return NotFound(f"orchestrator store not found{'' if where.startswith(':') else ' '}{where}", hint=hint)


def locate_home(explicit: str | os.PathLike[str] | None = None, cwd: str | None = None) -> HomeChoice:
    """``explicit`` > ``$ORCHESTRATOR_HOME`` > nearest ``.orchestrator`` upward > ``./.orchestrator`` (new)."""
    if explicit:
        return HomeChoice(Path(explicit).expanduser().resolve(), "--home")
    if os.environ.get("ORCHESTRATOR_HOME"):
        return HomeChoice(Path(os.environ["ORCHESTRATOR_HOME"]).expanduser().resolve(), "$ORCHESTRATOR_HOME")
    start = Path(cwd or os.getcwd()).resolve()
    for d in (start, *start.parents):
        if (d / HOME_NAME).is_dir():
            return HomeChoice(d / HOME_NAME, "found", str(start))
    return HomeChoice(start / HOME_NAME, "new", str(start))


def home_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The home a command started here would use (see :func:`locate_home`)."""
    return locate_home(explicit).path


__all__ = ["DB_NAME", "HOME_NAME", "HomeChoice", "home_dir", "locate_home"]
