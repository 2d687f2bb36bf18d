"""Requests clients send on the stream: `{"id", "method", "params"}`.

Each method takes the same parameters and gives the same errors as its REST
endpoint: the envelope and each method's params are checked against their
schemas (`schemas/requests/stream/`), as REST bodies are, with the same
conversion to errors. The answer is `{"id", "result"}` or `{"id", "error":
{errcode, error}}`. A bad frame gets an error answer and the socket stays usable.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import schemas
from federation.protocol.errors import Codes, MatrixError

from ..handlers.auth import Requester
from ..rest.http import check_request_schema, decode_json_object

logger = logging.getLogger(__name__)

Method = Callable[[Requester, dict[str, Any]], Awaitable[dict[str, Any]]]

ENVELOPE_SCHEMA = "stream/request"


class RequestDispatcher:
    def __init__(self) -> None:
        self._methods: dict[str, tuple[Method, str]] = {}

    def add(self, name: str, method: Method, *, params: str) -> None:
        """Serve `name`; its params must match `schemas/requests/<params>.json`."""
        if not schemas.has_schema("requests", params):
            raise ValueError(f"No request schema {params!r} for stream method {name}")
        self._methods[name] = (method, params)

    @property
    def methods(self) -> list[str]:
        return sorted(self._methods)

    @property
    def params_schemas(self) -> dict[str, str]:
        """Each method's params schema, by method name."""
        return {name: schema for name, (_, schema) in self._methods.items()}

    async def handle(self, requester: Requester, payload: bytes, is_binary: bool
                     ) -> tuple[str | None, dict[str, Any]]:
        """(request id, reply without the id); the id is None unless a string."""
        request_id: str | None = None
        try:
            request = self._parse(payload, is_binary)
            request_id = request["id"] if isinstance(request.get("id"), str) else None
            check_request_schema(ENVELOPE_SCHEMA, request)
            method, params_schema = self._method(request["method"])
            params = request.get("params", {})
            check_request_schema(params_schema, params)
            return request_id, {"result": await method(requester, params)}
        except MatrixError as exc:
            return request_id, {"error": exc.to_json()}
        except Exception:
            logger.exception("stream request from %s failed", requester.user_id)
            return request_id, {"error": {"errcode": Codes.UNKNOWN, "error": "Internal error"}}

    def _method(self, name: str) -> tuple[Method, str]:
        # The envelope schema names every method a stream may serve; a server
        # built without some of them refuses those like unknown ones.
        found = self._methods.get(name)
        if found is None:
            raise MatrixError(400, Codes.UNRECOGNIZED, f"Unrecognized method {name!r}")
        return found

    @staticmethod
    def _parse(payload: bytes, is_binary: bool) -> dict[str, Any]:
        if is_binary:
            raise MatrixError(400, Codes.NOT_JSON, "Frames must be text")
        return decode_json_object(payload)  # the REST bodies' rules (depth, NUL, canonical)
