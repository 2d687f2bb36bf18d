"""The outgoing federation HTTP client.

Every request is signed with X-Matrix, sent over TLS to the address server
discovery chose (with its `Host` header and certificate name), bounded in
time and in response size, and its JSON answer parsed. A destination that
fails is backed off exponentially; callers that must try anyway (joins) pass
`ignore_backoff=True`.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from io import BytesIO
from typing import Any
from urllib.parse import quote, urlencode

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.web.client import (
    URI,
    Agent,
    FileBodyProducer,
    HTTPConnectionPool,
    _HTTP11ClientFactory,
)
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer

from federation.protocol import canonical_json, identifiers
from federation.protocol.request_auth import sign_request
from federation.protocol.signing import ServerKey

from .backoff import Backoff
from .body import read_body_capped
from .discovery import ResolvedServer, ServerResolver
from .errors import DestinationUnreachable, HttpResponseError
from .tls import FederationTlsPolicy

__all__ = ["DestinationUnreachable", "FederationClient", "HttpResponseError", "encode_path"]

logger = logging.getLogger(__name__)

Query = Mapping[str, "str | Sequence[str]"]

# send_join answers for big rooms carry the whole state and auth chain.
MAX_RESPONSE_BYTES = 100 * 1024 * 1024
CONNECT_TIMEOUT_S = 20.0
MAX_DESTINATIONS = 10_000
USER_AGENT = b"Guildhall"
# The URI scheme our Agent sees; its host is the destination, hex-encoded, so
# that the connection pool keeps one set of connections per destination.
_SCHEME = b"matrix-federation"


def encode_path(template: str, *segments: str) -> str:
    """`encode_path("/_matrix/federation/v1/event/%s", event_id)`: each segment
    percent-encoded, slashes included."""
    return template % tuple(quote(s, safe="") for s in segments)


def _pool_key(destination: str) -> bytes:
    return destination.encode("utf-8").hex().encode("ascii")


class _QuietClientFactory(_HTTP11ClientFactory):
    noisy = False  # no log line per connection


@implementer(IStreamClientEndpoint)
class _ResolvedEndpoint:
    """Connects over TLS to the first of a resolved server's targets that answers."""

    def __init__(self, reactor: Any, server: ResolvedServer, tls: FederationTlsPolicy) -> None:
        self._reactor = reactor
        self._server = server
        self._tls = tls

    def connect(self, factory: Any) -> Deferred[Any]:
        return Deferred.fromCoroutine(self._connect(factory))

    async def _connect(self, factory: Any) -> Any:
        failure: Exception | None = None
        for host, port in self._server.targets:
            tcp = HostnameEndpoint(self._reactor, host, port, timeout=CONNECT_TIMEOUT_S)
            endpoint = wrapClientTLS(self._tls.creator_for(self._server.tls_name), tcp)
            try:
                return await endpoint.connect(factory)
            except CancelledError:
                raise
            except Exception as exc:
                logger.debug("connecting to %s:%d failed: %s", host, port, exc)
                failure = exc
        raise failure or ConnectionError("no address to connect to")


@implementer(IAgentEndpointFactory)
class _EndpointFactory:
    def __init__(self, reactor: Any, tls: FederationTlsPolicy) -> None:
        self._reactor = reactor
        self._tls = tls
        self._resolved: OrderedDict[bytes, ResolvedServer] = OrderedDict()

    def remember(self, key: bytes, server: ResolvedServer) -> None:
        self._resolved[key] = server
        self._resolved.move_to_end(key)
        while len(self._resolved) > MAX_DESTINATIONS:
            self._resolved.popitem(last=False)

    def endpointForURI(self, uri: URI) -> _ResolvedEndpoint:
        return _ResolvedEndpoint(self._reactor, self._resolved[uri.host], self._tls)


class FederationClient:
    def __init__(self, reactor: Any, signing_key: ServerKey, resolver: ServerResolver,
                 tls: FederationTlsPolicy, backoff: Backoff | None = None,
                 max_response_bytes: int = MAX_RESPONSE_BYTES) -> None:
        self._reactor = reactor
        self._key = signing_key
        self._resolver = resolver
        self.backoff = backoff or Backoff()
        self._max_response_bytes = max_response_bytes
        self._endpoints = _EndpointFactory(reactor, tls)
        pool = HTTPConnectionPool(reactor, persistent=True)
        pool.maxPersistentPerHost = 5
        pool.cachedConnectionTimeout = 120
        pool._factory = _QuietClientFactory
        self._agent = Agent.usingEndpointFactory(reactor, self._endpoints, pool=pool)

    @property
    def server_name(self) -> str:
        return self._key.server_name

    async def get_json(self, destination: str, path: str, query: Query | None = None, *,
                       timeout_s: float = 60.0, ignore_backoff: bool = False) -> Any:
        return await self._request("GET", destination, path, query, None, timeout_s,
                                   ignore_backoff)

    async def put_json(self, destination: str, path: str, body: Any, query: Query | None = None,
                       *, timeout_s: float = 60.0, ignore_backoff: bool = False) -> Any:
        return await self._request("PUT", destination, path, query, body, timeout_s,
                                   ignore_backoff)

    async def post_json(self, destination: str, path: str, body: Any,
                        query: Query | None = None, *, timeout_s: float = 60.0,
                        ignore_backoff: bool = False) -> Any:
        return await self._request("POST", destination, path, query, body, timeout_s,
                                   ignore_backoff)

    def destination_is_up(self, destination: str) -> None:
        """It just talked to us (an authenticated request): stop backing it off."""
        self.backoff.succeeded(destination)

    async def _request(self, method: str, destination: str, path: str, query: Query | None,
                       body: Any, timeout_s: float, ignore_backoff: bool) -> Any:
        if not identifiers.is_valid_server_name(destination):
            raise DestinationUnreachable(destination, "not a server name")
        wait = self.backoff.retry_in(destination, self._reactor.seconds())
        if wait > 0 and not ignore_backoff:
            raise DestinationUnreachable(destination, f"backed off for another {wait:.0f} s")
        uri = path + ("?" + urlencode(query, doseq=True, quote_via=quote) if query else "")
        if not uri.isascii():
            raise ValueError(f"path not percent-encoded: {path!r}")
        sent: Deferred[tuple[int, bytes]] = Deferred.fromCoroutine(
            self._send(method, destination, uri, body))
        sent.addTimeout(timeout_s, self._reactor, onTimeoutCancel=_timed_out)
        try:
            status, raw = await sent
        except CancelledError:
            raise
        except Exception as exc:
            self._failed(destination, f"{method} {path}: {type(exc).__name__}: {exc}")
            raise DestinationUnreachable(destination, f"{type(exc).__name__}: {exc}") from exc
        if status >= 500:
            self._failed(destination, f"{method} {path}: HTTP {status}")
        else:
            self.backoff.succeeded(destination)
        return _parse_response(status, raw)

    async def _send(self, method: str, destination: str, uri: str, body: Any
                    ) -> tuple[int, bytes]:
        server = await self._resolver.resolve(destination)
        key = _pool_key(destination)
        self._endpoints.remember(key, server)
        headers = Headers({
            b"Host": [_host_bytes(server.host_header)],
            b"User-Agent": [USER_AGENT],
            b"Authorization": [sign_request(self._key, method, uri, destination,
                                            body).encode("utf-8")],
        })
        producer = None
        if body is not None:
            headers.addRawHeader(b"Content-Type", b"application/json")
            producer = FileBodyProducer(BytesIO(canonical_json.encode_unchecked(body)))
        response = await self._agent.request(method.encode("ascii"),
                                             _SCHEME + b"://" + key + uri.encode("ascii"),
                                             headers, producer)
        return response.code, await read_body_capped(response, self._max_response_bytes)

    def _failed(self, destination: str, what: str) -> None:
        wait = self.backoff.failed(destination, self._reactor.seconds())
        logger.info("federation request to %s failed (%s); backing off %.0f s",
                    destination, what, wait)


def _host_bytes(host: str) -> bytes:
    return host.encode("ascii") if host.isascii() else host.encode("idna")


def _timed_out(_result: Any, timeout_s: float) -> None:
    # Cancelling surfaces as the Agent's own errors; name the real cause.
    raise TimeoutError(f"no answer within {timeout_s} s")


def _parse_response(status: int, raw: bytes) -> Any:
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except ValueError:
        value = None
        if 200 <= status < 300:
            raise HttpResponseError(status, None, raw) from None
    if not 200 <= status < 300:
        errcode = value.get("errcode") if isinstance(value, dict) else None
        raise HttpResponseError(status, errcode if isinstance(errcode, str) else None,
                                value if value is not None else raw)
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
