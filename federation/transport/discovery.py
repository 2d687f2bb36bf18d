"""Server discovery: which address to connect to for a server name, which
`Host` header to send and which name the certificate must carry.

Spec, "Resolving server names":
1. an IP literal: connect to it (port as given, else 8448); Host = the name;
2. a host name with an explicit port: connect to it; Host = the name;
3. `GET https://<host>/.well-known/matrix/server` -> `{"m.server": delegated}`;
   resolve the delegated name as in 1, 2, 4, 5, with Host and the certificate
   using the delegated name;
4. SRV `_matrix-fed._tcp.<host>`, then the deprecated `_matrix._tcp.<host>`;
5. A/AAAA records of <host>, port 8448.
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urljoin

from twisted.internet.defer import Deferred
from twisted.names import client as names_client
from twisted.names import dns
from twisted.names.error import DNSNameError, DomainError
from twisted.web.client import Agent
from twisted.web.http_headers import Headers

from federation.protocol import identifiers

from .body import read_body_capped
from .tls import is_ip_literal

logger = logging.getLogger(__name__)

DEFAULT_PORT = 8448
WELL_KNOWN_PATH = "/.well-known/matrix/server"
# Spec: cache a well-known answer 24 h by default and 48 h at most; errors ~1 h.
WELL_KNOWN_DEFAULT_TTL_S = 24 * 3600
WELL_KNOWN_MAX_TTL_S = 48 * 3600
WELL_KNOWN_ERROR_TTL_S = 3600
WELL_KNOWN_TIMEOUT_S = 10.0
WELL_KNOWN_MAX_BYTES = 50_000
MAX_REDIRECTS = 5
SRV_TTL_S = 3600
CACHE_SIZE = 10_000
_MAX_AGE = re.compile(r"max-age\s*=\s*(\d+)", re.IGNORECASE)


@dataclass(frozen=True)
class ResolvedServer:
    """Where a server name leads: addresses to try in order, the `Host`
    header, and the name its certificate must be valid for."""

    host_header: str
    tls_name: str
    targets: tuple[tuple[str, int], ...]


class SrvLookup(Protocol):
    async def lookup(self, name: str) -> list[tuple[str, int]]:
        """The SRV record `name`'s targets, in the order to try; [] if none."""
        ...


class DelegationLookup(Protocol):
    async def delegated_server(self, host: str) -> str | None:
        """The `m.server` of https://<host>/.well-known/matrix/server, or None."""
        ...


class _TtlCache:
    """A bounded map whose entries expire."""

    def __init__(self, clock: Any, size: int = CACHE_SIZE) -> None:
        self._clock = clock
        self._size = size
        self._entries: OrderedDict[str, tuple[Any, float]] = OrderedDict()

    def get(self, key: str) -> tuple[bool, Any]:
        entry = self._entries.get(key)
        if entry is None or entry[1] <= self._clock.seconds():
            return False, None
        return True, entry[0]

    def put(self, key: str, value: Any, ttl_s: float) -> None:
        self._entries.pop(key, None)
        self._entries[key] = (value, self._clock.seconds() + ttl_s)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)


class TwistedSrvLookup:
    """SRV lookups through twisted.names (the system's DNS servers by default)."""

    def __init__(self, clock: Any, resolver: Any = None) -> None:
        # The system resolver is made on first use: servers whose peers all
        # have IP-literal or explicit-port names never read resolv.conf.
        self._resolver = resolver
        self._cache = _TtlCache(clock)

    async def lookup(self, name: str) -> list[tuple[str, int]]:
        found, cached = self._cache.get(name)
        if found:
            return list(cached)
        if self._resolver is None:
            self._resolver = names_client.getResolver()
        try:
            answers, _authority, _additional = await self._resolver.lookupService(name)
        except (DNSNameError, DomainError):
            targets: list[tuple[str, int]] = []
        except Exception as exc:  # timeouts, refused: no SRV answer now, retry later
            logger.info("SRV lookup of %s failed: %s", name, exc)
            return []
        else:
            targets = order_srv_records([
                (r.payload.priority, r.payload.weight, str(r.payload.target), r.payload.port)
                for r in answers if r.type == dns.SRV and str(r.name).lower() == name.lower()
            ])
        self._cache.put(name, tuple(targets), SRV_TTL_S)
        return targets


def order_srv_records(records: list[tuple[int, int, str, int]]) -> list[tuple[str, int]]:
    """RFC 2782: by priority, and within one priority a weighted random order.
    A single record with target "." means the service is not offered."""
    if len(records) == 1 and records[0][2] in ("", "."):
        return []
    ordered: list[tuple[str, int]] = []
    for priority in sorted({r[0] for r in records}):
        group = [r for r in records if r[0] == priority and r[2] not in ("", ".")]
        while group:
            weights = [r[1] + 1 for r in group]  # +1: weight 0 still gets a chance
            pick = random.choices(range(len(group)), weights)[0]
            record = group.pop(pick)
            ordered.append((record[2].rstrip("."), record[3]))
    return ordered


class WellKnownLookup:
    """Fetches and caches `/.well-known/matrix/server`, following redirects."""

    def __init__(self, agent: Agent, clock: Any) -> None:
        self._agent = agent
        self._clock = clock
        self._cache = _TtlCache(clock)

    async def delegated_server(self, host: str) -> str | None:
        found, cached = self._cache.get(host)
        if found:
            return cached  # type: ignore[no-any-return]
        try:
            delegated, ttl = await self._fetch(host)
        except Exception as exc:  # unreachable, bad TLS, bad body: no delegation
            logger.info("no .well-known for %s: %s", host, exc)
            delegated, ttl = None, WELL_KNOWN_ERROR_TTL_S
        self._cache.put(host, delegated, ttl)
        return delegated

    async def _fetch(self, host: str) -> tuple[str | None, float]:
        url = f"https://{host}{WELL_KNOWN_PATH}"
        seen = {url}
        for _ in range(MAX_REDIRECTS + 1):
            request: Deferred[Any] = self._agent.request(
                b"GET", url.encode("ascii"), Headers({b"User-Agent": [b"Guildhall"]}))
            request.addTimeout(WELL_KNOWN_TIMEOUT_S, self._clock)
            response = await request
            location = response.headers.getRawHeaders(b"location")
            if response.code in (301, 302, 303, 307, 308) and location:
                await read_body_capped(response, WELL_KNOWN_MAX_BYTES)
                url = urljoin(url, location[0].decode("ascii", "replace"))
                if url in seen or not url.startswith("https://"):
                    raise ValueError(f"redirect loop or non-HTTPS redirect to {url}")
                seen.add(url)
                continue
            return await self._parse(response)
        raise ValueError("too many redirects")

    async def _parse(self, response: Any) -> tuple[str | None, float]:
        body = await read_body_capped(response, WELL_KNOWN_MAX_BYTES)
        if response.code != 200:
            return None, WELL_KNOWN_ERROR_TTL_S
        value = json.loads(body.decode("utf-8"))
        server = value.get("m.server") if isinstance(value, dict) else None
        if not isinstance(server, str) or not identifiers.is_valid_server_name(server):
            raise ValueError(f"invalid m.server {server!r}")
        return server, _cache_ttl(response)


def _cache_ttl(response: Any) -> float:
    for value in response.headers.getRawHeaders(b"cache-control") or []:
        text = value.decode("ascii", "replace")
        if "no-store" in text or "no-cache" in text:
            return 0.0
        match = _MAX_AGE.search(text)
        if match:
            return float(min(int(match.group(1)), WELL_KNOWN_MAX_TTL_S))
    return float(WELL_KNOWN_DEFAULT_TTL_S)


class ServerResolver:
    """The spec's discovery steps, over a well-known lookup and an SRV lookup."""

    def __init__(self, well_known: DelegationLookup, srv: SrvLookup) -> None:
        self._well_known = well_known
        self._srv = srv

    async def resolve(self, server_name: str) -> ResolvedServer:
        host, port = identifiers.split_server_name(server_name)
        if is_ip_literal(host) or port is not None:  # steps 1 and 2
            return _direct(server_name, host, port)
        delegated = await self._well_known.delegated_server(host)  # step 3
        if delegated is not None:
            d_host, d_port = identifiers.split_server_name(delegated)
            if is_ip_literal(d_host) or d_port is not None:
                return _direct(delegated, d_host, d_port)
            return await self._srv_or_default(d_host)
        return await self._srv_or_default(host)  # steps 4 and 5

    async def _srv_or_default(self, host: str) -> ResolvedServer:
        for service in ("_matrix-fed._tcp.", "_matrix._tcp."):
            targets = await self._srv.lookup(service + host)
            if targets:
                return ResolvedServer(host, host, tuple(targets))
        return ResolvedServer(host, host, ((host, DEFAULT_PORT),))


def _direct(name: str, host: str, port: int | None) -> ResolvedServer:
    return ResolvedServer(name, host.strip("[]"), ((host.strip("[]"), port or DEFAULT_PORT),))
