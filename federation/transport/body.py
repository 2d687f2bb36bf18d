"""Reading an HTTP response body with a size cap: a remote server must not be
able to exhaust our memory with an endless answer."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss


class ResponseTooLarge(Exception):
    pass


class _CappedCollector(Protocol):
    def __init__(self, done: Deferred[bytes], max_bytes: int) -> None:
        self._done = done
        self._max_bytes = max_bytes
        self._parts: list[bytes] = []
        self._size = 0

    def dataReceived(self, data: bytes) -> None:
        if self._done.called:
            return
        self._size += len(data)
        if self._size > self._max_bytes:
            self._done.errback(ResponseTooLarge(f"response over {self._max_bytes} bytes"))
            self.transport.stopProducing()  # drops the connection
            return
        self._parts.append(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._done.called:
            return
        # PotentialDataLoss: a body delimited by the connection closing.
        if reason.check(ResponseDone, PotentialDataLoss):
            self._done.callback(b"".join(self._parts))
        else:
            self._done.errback(reason)


async def read_body_capped(response: Any, max_bytes: int) -> bytes:
    length = response.length
    if isinstance(length, int) and length > max_bytes:
        aborted: Deferred[bytes] = Deferred()
        aborted.addErrback(lambda _failure: None)
        response.deliverBody(_CappedCollector(aborted, 0))  # aborts the transfer
        raise ResponseTooLarge(f"Content-Length {length} over {max_bytes} bytes")
    done: Deferred[bytes] = Deferred()
    response.deliverBody(_CappedCollector(done, max_bytes))
    return await done
