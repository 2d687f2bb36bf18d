"""Server access control lists (spec: server-server API, "Server Access Control
Lists (ACLs)"): whether `m.room.server_acl` content lets a server take part.

Pure: the caller passes the ACL event's content (or None when the room has none).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from federation.protocol.identifiers import split_server_name

SERVER_ACL = "m.room.server_acl"


def server_allowed(acl_content: Mapping[str, Any] | None, server_name: str) -> bool:
    """Whether `server_name` (a port is ignored) passes the ACL, in the spec's order."""
    if acl_content is None:
        return True  # no ACL in the room: everyone may take part
    host = _host(server_name)
    # 1. An IP literal is denied when `allow_ip_literals` is false (default true).
    allow_ip_literals = acl_content.get("allow_ip_literals", True)
    if allow_ip_literals is False and _is_ip_literal(host):
        return False
    # 2. A server matching a `deny` entry is denied.
    if any(_matches(entry, host) for entry in _entries(acl_content, "deny")):
        return False
    # 3. A server matching an `allow` entry is allowed; 4. otherwise denied
    #    (a missing `allow` is an empty list: nobody).
    return any(_matches(entry, host) for entry in _entries(acl_content, "allow"))


def _host(server_name: str) -> str:
    try:
        host, _ = split_server_name(server_name)
    except ValueError:
        host = server_name  # an invalid name still gets judged, never allowed by accident
    return host


def _is_ip_literal(host: str) -> bool:
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _entries(content: Mapping[str, Any], name: str) -> list[str]:
    """The list's string entries; anything else in the list, or a non-list, is ignored."""
    value = content.get(name)
    if not isinstance(value, list):
        return []
    return [entry for entry in value if isinstance(entry, str)]


def _matches(entry: str, host: str) -> bool:
    return _glob(entry).fullmatch(host) is not None


@lru_cache(maxsize=4096)
def _glob(entry: str) -> re.Pattern[str]:
    """`*` is any run of characters, `?` exactly one; case-insensitive like DNS."""
    parts = (".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in entry)
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)
