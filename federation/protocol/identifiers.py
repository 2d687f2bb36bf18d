"""Identifier grammars from the spec's appendix.

User IDs, room IDs, event IDs, room aliases and server names. Localparts we
create follow the strict grammar; IDs from other servers may use the historical
one, which is accepted in events.
"""

from __future__ import annotations

import ipaddress
import re

MAX_ID_BYTES = 255

# Strict user-ID localpart (the one we create): a-z 0-9 . _ = - / +
_STRICT_LOCALPART = re.compile(r"^[a-z0-9._=\-/+]+\Z")
_DNS_NAME = re.compile(r"^[A-Za-z0-9.\-]{1,255}\Z")
_IPV4 = re.compile(r"^[0-9]{1,3}(?:\.[0-9]{1,3}){3}\Z")
# The spec's IPv6address: 2*45 of hex digits, ':' and '.' (so no "%zone" suffix).
_IPV6_CHARS = re.compile(r"^[0-9A-Fa-f:.]{2,45}\Z")
_PORT = re.compile(r"^[0-9]{1,5}\Z")
_NAMESPACED = re.compile(r"^[a-z][a-z0-9._\-]*\Z")
_OPAQUE = re.compile(r"^[0-9A-Za-z._~\-]{1,255}\Z")
_ROOM_VERSION = re.compile(r"^[a-z0-9.\-]{1,32}\Z")
_URLSAFE_B64 = re.compile(r"^[A-Za-z0-9_\-]+\Z")


def _too_long(value: str) -> bool:
    # surrogatepass: a lone surrogate must make the ID invalid, not raise.
    return len(value.encode("utf-8", "surrogatepass")) > MAX_ID_BYTES


def split_server_name(server_name: str) -> tuple[str, int | None]:
    """Split `host[:port]` into (host, port); raises ValueError when invalid."""
    if server_name.startswith("["):
        end = server_name.find("]")
        if end < 0:
            raise ValueError("unterminated IPv6 literal")
        host, rest = server_name[: end + 1], server_name[end + 1 :]
    else:
        host, sep, port_text = server_name.partition(":")
        rest = sep + port_text
    port: int | None = None
    if rest:
        if not rest.startswith(":") or not _PORT.match(rest[1:]):
            raise ValueError("invalid port")
        port = int(rest[1:])
        if not 1 <= port <= 65535:
            raise ValueError("port out of range")
    return host, port


def is_valid_host(host: str) -> bool:
    """An IPv4 literal, a bracketed IPv6 literal or a DNS name."""
    if host.startswith("["):
        if not host.endswith("]") or not _IPV6_CHARS.match(host[1:-1]):
            return False
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return False
        return True
    if _IPV4.match(host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return False
        return True
    return bool(_DNS_NAME.match(host))


def is_valid_server_name(server_name: str) -> bool:
    if not server_name or _too_long(server_name):
        return False
    try:
        host, _ = split_server_name(server_name)
    except ValueError:
        return False
    return is_valid_host(host)


def _split_sigiled(value: str, sigil: str) -> tuple[str, str]:
    """`<sigil>localpart:domain` -> (localpart, domain); ValueError otherwise."""
    if not isinstance(value, str) or not value.startswith(sigil):
        raise ValueError(f"expected an identifier starting with {sigil!r}")
    localpart, sep, domain = value[1:].partition(":")
    if not sep:
        raise ValueError("identifier has no server name")
    return localpart, domain


def server_of(identifier: str) -> str:
    """The server name of a user ID, alias or v1-v11 room ID."""
    return _split_sigiled(identifier, identifier[:1])[1]


def is_valid_strict_localpart(localpart: str) -> bool:
    return bool(_STRICT_LOCALPART.match(localpart))


def is_valid_historical_localpart(localpart: str) -> bool:
    """Any non-surrogate code point except ':' and NUL (may be empty)."""
    return all(ch not in ":\x00" and not "\ud800" <= ch <= "\udfff" for ch in localpart)


def is_valid_user_id(user_id: object, *, strict: bool = False) -> bool:
    if not isinstance(user_id, str) or _too_long(user_id):
        return False
    try:
        localpart, domain = _split_sigiled(user_id, "@")
    except ValueError:
        return False
    if not is_valid_server_name(domain):
        return False
    if strict:
        return is_valid_strict_localpart(localpart)
    return is_valid_historical_localpart(localpart)


def is_valid_room_alias(alias: object) -> bool:
    if not isinstance(alias, str) or _too_long(alias):
        return False
    try:
        localpart, domain = _split_sigiled(alias, "#")
    except ValueError:
        return False
    return is_valid_historical_localpart(localpart) and is_valid_server_name(domain)


def is_valid_room_id(room_id: object) -> bool:
    """`!opaque:server` (v1-v11) or `!<url-safe hash>` (v12); either is opaque."""
    if not isinstance(room_id, str) or _too_long(room_id) or not room_id.startswith("!"):
        return False
    opaque, sep, domain = room_id[1:].partition(":")
    if not sep:
        return is_valid_hash_id(room_id)
    return is_valid_historical_localpart(opaque) and is_valid_server_name(domain)


def is_valid_hash_id(identifier: str) -> bool:
    """`$<43 url-safe base64 chars>` or `!<...>`: a reference-hash-derived ID."""
    return len(identifier) == 44 and bool(_URLSAFE_B64.match(identifier[1:]))


def is_valid_event_id(event_id: object) -> bool:
    """Event IDs from room version 4 on: `$` + URL-safe unpadded base64 SHA-256."""
    return isinstance(event_id, str) and event_id.startswith("$") and is_valid_hash_id(event_id)


def is_valid_namespaced_identifier(name: str) -> bool:
    return len(name) <= MAX_ID_BYTES and bool(_NAMESPACED.match(name))


def is_valid_opaque_identifier(value: str) -> bool:
    return bool(_OPAQUE.match(value))


def is_valid_room_version_id(value: str) -> bool:
    return bool(_ROOM_VERSION.match(value))
