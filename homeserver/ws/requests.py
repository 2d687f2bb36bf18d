"""Requests clients send on the stream: `{"id", "method", "params"}`.

Each method takes the same parameters and gives the same errors as its REST
endpoint; the answer is `{"id", "result"}` or `{"id", "error": {errcode, error}}`.
A bad frame gets an error answer and the socket stays usable.
"""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable

from federation.protocol.errors import Codes, MatrixError

from ..handlers.auth import Requester
from ..rest.http import decode_json_object

logger = logging.getLogger(__name__)

Method = Callable[[Requester, dict[str, Any]], Awaitable[dict[str, Any]]]


def param(params: dict[str, Any], name: str, kind: type | tuple[type, ...],
          default: Any = ...) -> Any:
    """A request parameter, with the REST endpoints' errors."""
    if name not in params or params[name] is None:
        if default is ...:
            raise MatrixError(400, Codes.MISSING_PARAM, f"Missing parameter: {name}")
        return default
    value = params[name]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise MatrixError(400, Codes.INVALID_PARAM, f"Invalid parameter: {name}")
    return value


class RequestDispatcher:
    def __init__(self) -> None:
        self._methods: dict[str, Method] = {}

    def add(self, name: str, method: Method) -> None:
        self._methods[name] = method

    @property
    def methods(self) -> list[str]:
        return sorted(self._methods)

    async def handle(self, requester: Requester, payload: bytes, is_binary: bool
                     ) -> tuple[Any, dict[str, Any]]:
        """(request id, reply without the id)."""
        request_id: Any = None
        try:
            request = self._parse(payload, is_binary)
            request_id = request.get("id")
            if not isinstance(request_id, str):
                raise MatrixError(400, Codes.BAD_JSON, "id must be a string")
            name = request.get("method")
            method = self._methods.get(name) if isinstance(name, str) else None
            if method is None:
                raise MatrixError(400, Codes.UNRECOGNIZED, f"Unrecognized method {name!r}")
            params = request.get("params", {})
            if not isinstance(params, dict):
                raise MatrixError(400, Codes.BAD_JSON, "params must be an object")
            return request_id, {"result": await method(requester, params)}
        except MatrixError as exc:
            return request_id, {"error": exc.to_json()}
        except Exception:
            logger.exception("stream request from %s failed", requester.user_id)
            return request_id, {"error": {"errcode": Codes.UNKNOWN, "error": "Internal error"}}

    @staticmethod
    def _parse(payload: bytes, is_binary: bool) -> dict[str, Any]:
        if is_binary:
            raise MatrixError(400, Codes.NOT_JSON, "Frames must be text")
        return decode_json_object(payload)  # the REST bodies' rules (depth, NUL, canonical)
