"""Bearer tokens: minting, hashing, checking, roles, and the first admin token of a new server.

Owns: the token format (``orc_`` + 43 url-safe characters, 256 bits), that only a token's sha256
is ever stored, the role order ``read < run < admin``, constant-time comparison, and the 0600 file
the first ``serve`` writes its admin token to (no default credentials exist). Store access goes
through the store's token records; nothing here prints or logs a token.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path
from typing import Any

from orchestrator.errors import UsageError

ROLES = ("read", "run", "admin")
PREFIX = "orc_"
ACCESS_TTL = 12 * 3600  # > 60 min: SAP's client caches a token only when more than an hour is left


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_token() -> tuple[str, str]:
    """(plain token, its sha256)."""
    plain = PREFIX + secrets.token_urlsafe(32)
    return plain, digest(plain)


def allows(role: str, needed: str) -> bool:
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)


def check_role(role: str) -> str:
    if role not in ROLES:
        raise UsageError(f"unknown role {role!r}", hint="one of " + ", ".join(ROLES))
    return role


def create(store: Any, name: str, role: str, rg: str | None = None) -> tuple[str, dict[str, Any]]:
    """Mint an API token; returns the plain token (shown once) and its record."""
    if not name or len(name) > 64:
        raise UsageError("token name must be 1-64 characters")
    plain, sha = new_token()
    row = store.add_token(name=name, role=check_role(role), sha256=sha, rg=rg)
    return plain, row


def lookup(store: Any, presented: str) -> dict[str, Any] | None:
    """The live token record for a presented bearer token, or None.

    The store finds the row by the digest (an index lookup on a hash, so timing reveals nothing
    about the secret); the digests are then compared in constant time before trusting the row.
    """
    if not presented or len(presented) > 256:
        return None
    sha = digest(presented)
    row = store.token_by_hash(sha)
    if row is None:
        return None
    stored = store.db.execute("SELECT sha256 FROM tokens WHERE id=?", (row["id"],)).fetchone()
    return row if stored and hmac.compare_digest(stored[0], sha) else None


def mint_access(store: Any, parent: dict[str, Any]) -> tuple[str, int]:
    """An access token for ``POST /oauth/token``: the parent's role and scope, expiring."""
    plain, sha = new_token()
    store.add_token(name=f"{parent['name']}-access", role=parent["role"], sha256=sha, kind="access",
                    expires_at=time.time() + ACCESS_TTL, rg=parent["rg"], parent_id=parent["id"])
    return plain, ACCESS_TTL


def mint_tracking(store: Any, rg: str, execution_id: str) -> str:
    """A capability that lets the steps of one execution PATCH that execution's metrics only."""
    plain, sha = new_token()
    store.add_token(name=f"tracking-{execution_id}", role="run", sha256=sha, kind="tracking", rg=rg,
                    execution_id=execution_id)
    return plain


def tracking_env(store: Any, rg: str, execution_id: str, base: str) -> dict[str, str]:
    """What a step of a server-run execution gets so SAP's ``ai_core_sdk`` tracking reports to
    this execution only: its id and a capability URL (``<base>/tracking/<capability>``)."""
    cap = mint_tracking(store, rg, execution_id)
    passthrough = [v for v in os.environ.get("ORCHESTRATOR_STEP_ENV_PASSTHROUGH", "").split(",") if v]
    return {"AICORE_EXECUTION_ID": execution_id, "AICORE_TRACKING_ENDPOINT": f"{base}/tracking/{cap}",
            "ORCHESTRATOR_STEP_ENV_PASSTHROUGH": ",".join(passthrough + ["AICORE_EXECUTION_ID",
                                                                         "AICORE_TRACKING_ENDPOINT"])}


def ensure_admin_file(store: Any, home: Path) -> Path | None:
    """On a store without any API token, create an admin token in ``home/admin-token`` (0600).

    Returns the file path when a token was created now, else None.
    """
    if store.list_tokens():
        return None
    plain, _ = create(store, "admin", "admin")
    path = home / "admin-token"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (plain + "\n").encode())
    finally:
        os.close(fd)
    return path
