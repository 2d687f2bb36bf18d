"""`GET /_guildhall/client/v1/stream`: the same data as /sync, pushed as it happens.

The first frame is what `/sync?since=` would return (or an initial sync);
each later frame is an incremental /sync body with only what changed:
`{"type": "sync", "next_batch": ..., "data": {...}}`. Because frames are
/sync bodies with /sync tokens, a client can switch between /sync and the
stream at any token without gaps or duplicates. Clients may also send
requests (see requests.py) on the same socket.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import autobahn.util
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny
from twisted.internet import defer

from federation.protocol.errors import MatrixError

from ..handlers.auth import Authenticator, Requester
from ..sync.filtering import NO_FILTER
from ..handlers.sync import SyncHandler, SyncRequest
from .. import wire_json
from ..sync.tokens import SyncToken
from .requests import RequestDispatcher

logger = logging.getLogger(__name__)

# autobahn builds the arguments of a debug log line on every frame it sends,
# even with debug logging off, and colours them with click when click is
# installed (a development tool brings it): 20% of the cost of a frame. We do
# not use autobahn's coloured logs.
autobahn.util._HAS_CLICK = False

CLOSE_TOKEN_REVOKED = 4001  # application close code: the access token was revoked


def sync_has_changes(body: dict[str, Any]) -> bool:
    rooms = body.get("rooms", {})
    return bool(
        any(rooms.get(section) for section in ("join", "invite", "leave", "knock"))
        or body.get("presence", {}).get("events")
        or body.get("account_data", {}).get("events")
        or body.get("to_device", {}).get("events")
        or body.get("device_lists", {}).get("changed")
        or body.get("device_lists", {}).get("left")
    )


class StreamProtocol(WebSocketServerProtocol):
    """One client's stream. Services come from the factory."""

    factory: StreamFactory

    def __init__(self) -> None:
        super().__init__()
        self.requester: Requester | None = None
        self._since: SyncToken | None = None
        self._filter = NO_FILTER
        self._pump: defer.Deferred | None = None
        self._open = False

    # Handshake ---------------------------------------------------------------

    def onConnect(self, request: Any) -> defer.Deferred:
        return defer.Deferred.fromCoroutine(self._authenticate(request))

    async def _authenticate(self, request: Any) -> None:
        params = request.params
        token = _bearer(request.headers.get("authorization"))
        if token is None and params.get("access_token"):
            token = params["access_token"][0]
        try:
            self.requester = await self.factory.auth.requester_for_token(token)
            since = params.get("since", [None])[0]
            self._since = SyncToken.parse(since) if since else None
            self._filter = await self.factory.resolve_filter(
                self.requester.user_id, params.get("filter", [None])[0])
        except MatrixError as exc:
            raise ConnectionDeny(exc.status, f"{exc.errcode}: {exc.message}") from exc

    # Lifecycle ---------------------------------------------------------------

    def onOpen(self) -> None:
        assert self.requester is not None
        self._open = True
        self.factory.register(self)
        if self.factory.presence is not None:
            self.factory.presence.user_syncing(self.requester.user_id, self.requester.device_id,
                                               "online")
        self._pump = defer.Deferred.fromCoroutine(self._pump_sync())
        self._pump.addErrback(self._pump_failed)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        was_open, self._open = self._open, False
        if not was_open:
            return
        self.factory.unregister(self)
        if self._pump is not None:
            self._pump.cancel()
        if self.factory.presence is not None and self.requester is not None:
            self.factory.presence.user_stopped_syncing(self.requester.user_id,
                                                       self.requester.device_id)

    def revoke(self) -> None:
        """The access token was revoked: say why and close."""
        self.sendClose(CLOSE_TOKEN_REVOKED, "M_UNKNOWN_TOKEN: access token revoked")

    async def _pump_sync(self) -> None:
        token, first = self._since, True
        while self._open:
            token = await self._push_next(token, first)
            first = False

    async def _push_next(self, token: SyncToken | None, first: bool) -> SyncToken | None:
        """Wait for the next change, send it, and return the new token. The body
        dies here, before the next wait: an initial sync of a big room is many
        thousands of objects, and 500 streams each holding one until their next
        frame cost memory and then a long pause freeing them all at once."""
        assert self.requester is not None
        body = await self.factory.sync.sync(SyncRequest(
            self.requester.user_id, self.requester.device_id, token,
            0 if first else None, self._filter))
        if not self._open:
            return token
        if first or sync_has_changes(body):
            self._send({"type": "sync", "next_batch": body["next_batch"], "data": body})
        return SyncToken.parse(body["next_batch"])

    def _pump_failed(self, failure: Any) -> None:
        if failure.check(defer.CancelledError) or not self._open:
            return None
        logger.error("stream for %s failed: %s", self.requester, failure.getTraceback())
        self.sendClose(1011, "internal error")
        return None

    # Requests ------------------------------------------------------------------

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        d = defer.Deferred.fromCoroutine(self._handle(payload, isBinary))
        d.addErrback(lambda f: logger.error("stream request failed: %s", f.getTraceback()))

    async def _handle(self, payload: bytes, is_binary: bool) -> None:
        assert self.requester is not None
        request_id, reply = await self.factory.dispatcher.handle(self.requester, payload,
                                                                 is_binary)
        if self._open:
            self._send({"id": request_id, **reply})

    def _send(self, frame: dict[str, Any]) -> None:
        self.sendMessage(wire_json.encode(frame), isBinary=False)


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


class StreamFactory(WebSocketServerFactory):
    protocol = StreamProtocol

    def __init__(self, auth: Authenticator, sync: SyncHandler, dispatcher: RequestDispatcher,
                 resolve_filter: Callable[[str, str | None], Any], presence: Any = None,
                 ping_interval: float = 30) -> None:
        super().__init__()
        self.auth = auth
        self.sync = sync
        self.dispatcher = dispatcher
        self.resolve_filter = resolve_filter
        self.presence = presence
        self._by_device: dict[tuple[str, str], set[StreamProtocol]] = {}
        self.setProtocolOptions(autoPingInterval=ping_interval, autoPingTimeout=ping_interval,
                                maxMessagePayloadSize=1_048_576)

    def register(self, protocol: StreamProtocol) -> None:
        assert protocol.requester is not None
        key = (protocol.requester.user_id, protocol.requester.device_id)
        self._by_device.setdefault(key, set()).add(protocol)

    def unregister(self, protocol: StreamProtocol) -> None:
        if protocol.requester is None:
            return
        key = (protocol.requester.user_id, protocol.requester.device_id)
        streams = self._by_device.get(key)
        if streams is not None:
            streams.discard(protocol)
            if not streams:
                del self._by_device[key]

    def revoke(self, user_id: str, device_id: str | None) -> None:
        """Close the streams of a logged-out device (all devices when None)."""
        for (user, device), streams in list(self._by_device.items()):
            if user == user_id and (device_id is None or device == device_id):
                for protocol in list(streams):
                    protocol.revoke()
