"""The Service's git sync and schedules (issue 5): repositories, applications, the scheduler.

Owns: the Service's entry points to :mod:`orchestrator.control.syncing` (repositories,
applications, one sync or the sync loop) and :mod:`orchestrator.control.scheduling` (a tick,
a backfill, the scheduler loop), submitting in the schedule's resource group. Loops run on their
own store connection. A mixin of :class:`~orchestrator.control.service.Service` (uses its
``store``, ``home``, ``rg``, ``tracking_base``, ``scoped`` and ``submit``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.store.sqlite import SqliteStore

if TYPE_CHECKING:  # names used only in annotations
    import threading
    from datetime import datetime

    from orchestrator.control.scheduling import Submit, TickReport
    from orchestrator.control.syncing import SyncReport
    from orchestrator.plan.cron import Clock


class ServiceSync:
    """Git sync and schedules; a mixin of the Service."""

    home: Path
    rg: str
    tracking_base: str
    store: SqliteStore

    # ------------------------------------------------------------------ git sync and schedules (issue 5)
    def add_repository(self, name: str, url: str, *, username: str | None = None,
                       password: str | None = None) -> dict[str, Any]:
        from orchestrator.control import syncing
        return syncing.add_repository(self.store, name, url, username=username, password=password)

    def add_application(self, name: str, *, repository: str, path: str, revision: str,
                        rg: str | None = None) -> dict[str, Any]:
        from orchestrator.control import syncing
        return syncing.add_application(self.store, name, repository=repository, path=path, revision=revision,
                                       rg=rg or self.rg)

    def sync(self, application: str | None = None, *, force: bool = False) -> list[SyncReport]:
        from orchestrator.control import syncing
        from orchestrator.control.sweep_admin import synced_starter
        start = synced_starter(self.home, self.tracking_base)  # synced Sweeps start once per digest
        if application:
            return [syncing.sync_application(self.store, self.home, application, force=force, start=start)]
        return syncing.sync_all(self.store, self.home, force=force, start=start)

    def _submitter(self) -> Submit:
        """:meth:`submit` in the schedule's resource group, as :class:`scheduling.Submit` wants it."""
        return lambda rg, configuration_id, **kw: self.scoped(rg).submit(configuration_id, **kw)

    def scheduler_tick(self, clock: Clock | None = None) -> TickReport:
        from orchestrator.control import scheduling
        from orchestrator.plan import cron
        return scheduling.tick(self.store, clock or cron.SystemClock(), self._submitter())

    def backfill(self, schedule_id: str, frm: datetime, to: datetime, *, even_if_inactive: bool = False) -> TickReport:
        from orchestrator.control import scheduling
        return scheduling.backfill(self.store, self.rg, schedule_id, frm, to, self._submitter(),
                                   even_if_inactive=even_if_inactive)

    def sync_loop(self, stop: threading.Event, interval: float = 300.0) -> None:
        """Sync every application every ``interval`` s until ``stop``, on its own store connection."""
        from orchestrator.control import syncing
        from orchestrator.control.service import Service
        svc = Service(self.home, self.rg, reap=False)
        svc.tracking_base = self.tracking_base
        try:
            from orchestrator.control.sweep_admin import synced_starter
            syncing.loop(svc.store, self.home, stop, interval, start=synced_starter(self.home, self.tracking_base))
        finally:
            svc.close()

    def scheduler_loop(self, stop: threading.Event, interval: float = 10.0, clock: Clock | None = None) -> None:
        """The scheduler until ``stop``, on its own store connection (``scheduler`` and ``serve``)."""
        from orchestrator.control import scheduling
        from orchestrator.plan import cron
        from orchestrator.control.service import Service
        svc = Service(self.home, self.rg, reap=False)
        svc.tracking_base = self.tracking_base
        try:
            scheduling.loop(svc.store, clock or cron.SystemClock(), svc._submitter(), stop, interval)
        finally:
            svc.close()
