"""Store records of git sync (repositories, applications, synced files) and schedule slots.

Owns: the SQL for those tables. A mixin of :class:`~orchestrator.store.sqlite.SqliteStore`
(uses its ``db``, ``transaction`` and ``_one``); every read is scoped.
"""

from __future__ import annotations


class SyncRecords:
    """Repositories, applications, file sync results and (schedule, slot) claims."""
