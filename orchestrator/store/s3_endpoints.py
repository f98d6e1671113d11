"""Which S3 endpoints an object store secret may name (a server-side request forgery guard).

Owns: :func:`check_endpoint`, called when an S3 object store secret is registered (a located
error, HTTP 400 through the API) and again right before a client connects (on the driver or on a
Ray node): never a link-local or cloud metadata address (``169.254.0.0/16``, ``fe80::/10``,
``fd00:ec2::254``, ``metadata.google.internal``; every address the host resolves to is checked,
IPv4-mapped IPv6 included), and, when the operator sets ``$ORCHESTRATOR_S3_ENDPOINTS`` (a comma
list of ``scheme://host[:port]``), only those. Stdlib only: shipped to Ray nodes by value with
:mod:`orchestrator.store.objects_s3`.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from urllib.parse import urlsplit

from orchestrator.errors import ArtifactError

ENDPOINTS_VAR = "ORCHESTRATOR_S3_ENDPOINTS"  # comma list of scheme://host[:port]: the only endpoints allowed
# Never an endpoint: link-local addresses (169.254.169.254 is every cloud's instance metadata,
# with the machine's own credentials) and the AWS metadata address over IPv6.
_FORBIDDEN_NETS = tuple(ipaddress.ip_network(n) for n in ("169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128"))
_FORBIDDEN_HOSTS = {"metadata.google.internal", "metadata.google.internal.", "metadata", "instance-data",
                    "instance-data.ec2.internal"}


def _origin(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of an http(s) URL (the port defaulted by the scheme)."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or (443 if scheme == "https" else 80)


def check_endpoint(name: str, endpoint: str) -> None:
    """Refuse an endpoint that is, or resolves to, a link-local or cloud metadata address (every
    address the host resolves to is checked); when ``$ORCHESTRATOR_S3_ENDPOINTS`` is set, refuse
    any endpoint whose ``scheme://host:port`` is not in it. A host that does not resolve here passes
    (a node may resolve it; the check runs again there before connecting)."""
    scheme, host, port = _origin(endpoint)
    where = f"object store secret {name!r}: endpoint {endpoint[:120]!r}"
    allowed = [e for e in (x.strip() for x in os.environ.get(ENDPOINTS_VAR, "").split(",")) if e]
    if allowed and (scheme, host, port) not in {_origin(e if "://" in e else "https://" + e) for e in allowed}:
        raise ArtifactError(f"{where} is not one of the endpoints this installation allows",
                            hint=f"use one of {', '.join(allowed)[:300]} (${ENDPOINTS_VAR})")
    bare = host.strip("[]")
    if bare in _FORBIDDEN_HOSTS:
        raise ArtifactError(f"{where} is a cloud metadata service, never an object store")
    try:
        addresses = {ipaddress.ip_address(bare)}
    except ValueError:
        try:
            infos = socket.getaddrinfo(bare, port, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError):
            return
        addresses = {ipaddress.ip_address(str(i[4][0]).split("%", 1)[0]) for i in infos}
    for addr in addresses:
        mapped = getattr(addr, "ipv4_mapped", None)
        for a in (addr, mapped) if mapped is not None else (addr,):
            if any(a.version == net.version and a in net for net in _FORBIDDEN_NETS):
                raise ArtifactError(f"{where} resolves to {a}, a link-local or cloud metadata address",
                                    hint="an object store endpoint is never a link-local address")
