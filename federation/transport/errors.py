"""The two ways an outgoing federation request fails."""

from __future__ import annotations

from typing import Any


class HttpResponseError(Exception):
    """The destination answered, but not with 2xx JSON: its status, its
    `errcode` (None when the body is not a Matrix error) and the parsed body
    (or the raw bytes when it is not JSON)."""

    def __init__(self, status: int, errcode: str | None, body: Any) -> None:
        super().__init__(f"HTTP {status} {errcode or ''}".strip())
        self.status = status
        self.errcode = errcode
        self.body = body


class DestinationUnreachable(Exception):
    """No answer: connection, TLS or timeout failure, an oversized or
    truncated response, or the destination is backed off after failures."""

    def __init__(self, destination: str, reason: str) -> None:
        super().__init__(f"{destination}: {reason}")
        self.destination = destination
        self.reason = reason
