"""The stream's place in the HTTP tree, loading the WebSocket stack on first use.

autobahn's Twisted WebSocket module imports autobahn's whole WAMP stack with it
(cryptography, cbor2, argon2-cffi, click): some 13 MiB of a server's memory. A
server whose clients all long-poll /sync never needs it, so it is loaded when
the first client opens a stream.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from ..rest.site import Renderable
    from .stream import StreamFactory

STREAM_PATH = b"/_guildhall/client/v1/stream"


class StreamResource:
    def __init__(self, make_factory: Callable[[], StreamFactory]) -> None:
        self._make_factory = make_factory
        self._factory: StreamFactory | None = None
        self._resource: Renderable | None = None

    def render(self, request: Any) -> Any:
        if self._resource is None:
            from autobahn.twisted.resource import WebSocketResource

            self._factory = self._make_factory()
            self._resource = WebSocketResource(self._factory)
        return self._resource.render(request)

    def revoke(self, user_id: str, device_id: str | None) -> None:
        """Close the streams of a logged-out device (see StreamFactory.revoke)."""
        if self._factory is not None:
            self._factory.revoke(user_id, device_id)
