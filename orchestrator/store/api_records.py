"""Store records the REST API adds: tokens, secrets, object stores, execution schedules, listings.

Owns: the SQL for those tables and the filtered/counted listings of the catalog. A mixin of
:class:`~orchestrator.store.sqlite.SqliteStore` (uses its ``db``, ``transaction`` and ``_one``);
every read is scoped by resource group.
"""

from __future__ import annotations


class ApiRecords:
    """Tokens, secrets, object stores, schedules and catalog listings."""
