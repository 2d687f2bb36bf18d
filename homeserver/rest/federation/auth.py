"""X-Matrix authentication of incoming federation requests.

Spec, "Request Authentication": rebuild `{method, uri, origin, destination,
content}` from the request as received (raw URI, parsed JSON body), and check
the origin's signature on it with a key valid now. Any failure is 401
M_UNAUTHORIZED; a `destination` other than us is refused too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from twisted.web.http import Request

from federation.keys import KeyRing
from federation.protocol import canonical_json, identifiers
from federation.protocol.errors import Codes, MatrixError, SignatureError
from federation.protocol.request_auth import (
    XMatrixAuth,
    parse_authorization,
    verify_request,
)

from ..http import read_body

logger = logging.getLogger(__name__)


def _unauthorized(message: str) -> MatrixError:
    return MatrixError(401, Codes.UNAUTHORIZED, message)


class FederationAuthenticator:
    def __init__(self, server_name: str, keyring: KeyRing) -> None:
        self._server_name = server_name
        self._keyring = keyring
        # Called with each authenticated origin (e.g. to stop backing it off).
        self.on_origin_seen: list[Callable[[str], None]] = []

    async def authenticate(self, request: Request) -> str:
        """The verified origin server of `request`, or 401 M_UNAUTHORIZED."""
        auth = self._parse_header(request)
        if auth.destination is not None and auth.destination != self._server_name:
            raise _unauthorized("Request is for another destination")
        content = _body_json(request)
        try:
            key = await self._keyring.verify_key(auth.origin, auth.key_id,
                                                 self._keyring.now_ms())
            # Undecodable bytes cannot match what the origin signed: they fail below.
            verify_request(auth, request.method.decode("ascii", "replace"),
                           request.uri.decode("ascii", "replace"), self._server_name,
                           content, key)
        except SignatureError as exc:
            logger.info("refused a request from %s to %s: %s", auth.origin,
                        request.path.decode("ascii", "replace")[:200], exc.message)
            raise _unauthorized(f"Invalid signature: {exc.message}") from exc
        for listener in self.on_origin_seen:
            listener(auth.origin)
        return auth.origin

    def _parse_header(self, request: Request) -> XMatrixAuth:
        headers = request.requestHeaders.getRawHeaders(b"authorization") or []
        for header in headers:
            text = header.decode("utf-8", "replace")
            if not text.lower().startswith("x-matrix "):
                continue
            try:
                auth = parse_authorization(text)
            except SignatureError as exc:
                raise _unauthorized(exc.message) from exc
            if not identifiers.is_valid_server_name(auth.origin):
                raise _unauthorized("Invalid origin")
            return auth
        raise _unauthorized("Missing X-Matrix Authorization header")


def _body_json(request: Request) -> Any:
    """The parsed body (None without one): the signed object's `content`."""
    raw = read_body(request)
    if not raw.strip():
        return None
    value = canonical_json.parse(raw)
    if not isinstance(value, dict):
        raise MatrixError(400, Codes.BAD_JSON, "Content must be a JSON object")
    return value
