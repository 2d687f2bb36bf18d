"""The JSON HTTP framework every REST resource runs on.

Routing by method and path pattern, request-body parsing and checks, the
spec's error JSON (rendered in exactly one place), CORS, and logging of any
500 with its traceback.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Awaitable, Callable
from urllib.parse import unquote

from twisted.internet.defer import Deferred
from twisted.web.http import Request

import schemas
from federation.protocol import canonical_json
from federation.protocol.errors import Codes, MatrixError

from .. import wire_json
from .site import NOT_DONE_YET

logger = logging.getLogger(__name__)

JsonDict = dict[str, Any]
Handler = Callable[..., Awaitable[tuple[int, Any]]]

CORS_HEADERS = {
    b"Access-Control-Allow-Origin": b"*",
    b"Access-Control-Allow-Methods": b"GET, HEAD, POST, PUT, DELETE, OPTIONS",
    b"Access-Control-Allow-Headers": b"X-Requested-With, Content-Type, Authorization, Date",
}


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    name: str
    # The request schema (`schemas/requests/<body>.json`) its JSON body must
    # match; `parse_json_body` applies it. None: a route that reads no JSON body.
    body: str | None = None


def path_pattern(template: str) -> re.Pattern[str]:
    """`/rooms/{roomId}/send/{eventType}/{txnId}` -> a regex with named groups.

    A trailing `{name:*}` matches the rest of the path (slashes included).
    """
    regex = re.sub(r"\{(\w+):\*\}", r"(?P<\1>.*)", template)
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]*)", regex)
    return re.compile("^" + regex + "$")


class JsonRouter:
    """One resource under a prefix, dispatching every sub-path to a handler."""

    def __init__(self, prefixes: tuple[str, ...] = ("",)) -> None:
        self._prefixes = prefixes
        self._routes: list[Route] = []

    def add(self, method: str, template: str, handler: Handler, name: str = "",
            body: str | None = None) -> None:
        if body is not None and not schemas.has_schema("requests", body):
            raise ValueError(f"No request schema {body!r} for {method} {template}")
        for prefix in self._prefixes:
            self._routes.append(Route(method, path_pattern(prefix + template), handler,
                                      name or template, body))

    @property
    def routes(self) -> list[Route]:
        return list(self._routes)

    def render(self, request: Request) -> Any:
        Deferred.fromCoroutine(self._dispatch(request))
        return NOT_DONE_YET

    async def _dispatch(self, request: Request) -> None:
        try:
            status, body = await self._route(request)
        except MatrixError as exc:
            status, body = exc.status, exc.to_json()
            if exc.status == 429 and "retry_after_ms" in exc.extra:
                # Round up: a client retrying after the header must not be early.
                seconds = max(1, -(-int(exc.extra["retry_after_ms"]) // 1000))
                request.setHeader(b"Retry-After", str(seconds).encode())
        except Exception:
            logger.exception("500 on %s %s", request.method.decode(), _safe_path(request))
            status, body = 500, {"errcode": Codes.UNKNOWN, "error": "Internal server error"}
        respond(request, status, body)

    async def _route(self, request: Request) -> tuple[int, Any]:
        method = request.method.decode("ascii", "replace").upper()
        if method == "OPTIONS":
            return 200, {}
        raw_path = request.path.decode("ascii", "replace")
        allowed = False
        for route in self._routes:
            match = route.pattern.match(raw_path)
            if match is None:
                continue
            if route.method != method and not (method == "HEAD" and route.method == "GET"):
                allowed = True
                continue
            params = {k: _decode_segment(v) for k, v in match.groupdict().items()}
            request.body_schema = route.body  # type: ignore[attr-defined]
            return await route.handler(request, **params)
        if allowed:
            raise MatrixError(405, Codes.UNRECOGNIZED, "Unrecognized request (wrong method)")
        raise MatrixError(404, Codes.UNRECOGNIZED, "Unrecognized request")


def _decode_segment(value: str) -> str:
    try:
        text = unquote(value, encoding="utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise MatrixError(400, Codes.INVALID_PARAM, "Path is not valid UTF-8") from exc
    if "\x00" in text:
        raise MatrixError(400, Codes.INVALID_PARAM, "Path contains NUL")
    return text


def _safe_path(request: Request) -> str:
    return request.path.decode("ascii", "replace")[:200]


def respond(request: Request, status: int, body: Any) -> None:
    if request.finished or request._disconnected:
        return
    payload = wire_json.encode(body)
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", b"application/json")
    request.setHeader(b"Cache-Control", b"no-cache, no-store, must-revalidate")
    for name, value in CORS_HEADERS.items():
        request.setHeader(name, value)
    request.setHeader(b"Content-Length", str(len(payload)).encode())
    if request.method != b"HEAD":
        request.write(payload)
    request.finish()


# Request parsing helpers ------------------------------------------------------


def read_body(request: Request) -> bytes:
    if getattr(request, "body_too_large", False):
        raise MatrixError(413, Codes.TOO_LARGE, "Request body too large")
    request.content.seek(0)
    return request.content.read()


def parse_json_body(request: Request, *, allow_empty: bool = True) -> JsonDict:
    """The JSON object in the body: M_NOT_JSON if not JSON, M_BAD_JSON if not an
    object; then checked against its route's request schema (`Route.body`)."""
    raw = read_body(request)
    if not raw.strip():
        if not allow_empty:
            raise MatrixError(400, Codes.NOT_JSON, "Content not JSON")
        body: JsonDict = {}
    else:
        body = decode_json_object(raw)
    schema = getattr(request, "body_schema", None)
    if schema is not None:
        check_request_schema(schema, body)
    return body


def check_request_schema(schema: str, body: Any) -> None:
    """400 with the schema's errcode (M_BAD_JSON unless it names another)
    unless `body` matches `schemas/requests/<schema>.json`."""
    try:
        schemas.validate_request(schema, body)
    except schemas.SchemaError as exc:
        raise MatrixError(exc.status, exc.errcode, str(exc)) from exc


def decode_json_object(raw: bytes) -> JsonDict:
    """A client's JSON object (a body or a stream frame), under the same rules:
    M_NOT_JSON if not UTF-8 JSON, M_BAD_JSON if not an object or not canonical."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MatrixError(400, Codes.NOT_JSON, "Content not valid UTF-8") from exc
    value = canonical_json.parse(text)
    if not isinstance(value, dict):
        raise MatrixError(400, Codes.BAD_JSON, "Content must be a JSON object")
    check_client_json(value)
    return value


# Deeper JSON is refused: no client needs it, and encoding what we accept
# (events embedded in /sync, federation PDUs) must never hit RecursionError.
MAX_JSON_DEPTH = 100


def check_client_json(value: Any) -> None:
    """M_BAD_JSON unless `value`, parsed from a client's request (HTTP body or
    stream frame), can be stored and sent on: canonical JSON values, nesting
    no deeper than MAX_JSON_DEPTH, no NUL in any string (PostgreSQL text
    cannot hold NUL)."""
    _check_depth_and_nul(value)
    try:
        canonical_json.check_canonical(value)
    except MatrixError as exc:
        raise MatrixError(400, Codes.BAD_JSON, exc.message) from exc


def _check_depth_and_nul(value: Any) -> None:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise MatrixError(400, Codes.BAD_JSON, "Strings may not contain NUL")
            continue
        if isinstance(item, dict):
            stack.extend((key, depth) for key in item)
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > MAX_JSON_DEPTH:
            raise MatrixError(400, Codes.BAD_JSON, f"JSON nested deeper than {MAX_JSON_DEPTH}")
        stack.extend((child, depth + 1) for child in children)


def _query_text(name: str, raw: bytes) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MatrixError(400, Codes.INVALID_PARAM, f"{name} is not UTF-8") from exc
    if "\x00" in text:  # as in paths: NUL never belongs in a parameter
        raise MatrixError(400, Codes.INVALID_PARAM, f"{name} contains NUL")
    return text


def query_arg(request: Request, name: str, default: str | None = None) -> str | None:
    values = request.args.get(name.encode())
    if not values:
        return default
    return _query_text(name, values[0])


_INTEGER = re.compile(r"-?[0-9]{1,16}", re.ASCII)


def query_int(request: Request, name: str, default: int | None = None,
              minimum: int | None = None, maximum: int | None = None) -> int | None:
    text = query_arg(request, name)
    if text is None:
        return default
    # ASCII digits only (int() also takes '٣', '+1', ' 1', '1_0'), within the
    # range JSON integers may take.
    if _INTEGER.fullmatch(text) is None or abs(int(text)) > canonical_json.MAX_INT:
        raise MatrixError(400, Codes.INVALID_PARAM, f"{name} must be an integer")
    value = int(text)
    if minimum is not None and value < minimum:
        value = minimum
    if maximum is not None and value > maximum:
        value = maximum
    return value


def query_bool(request: Request, name: str, default: bool = False) -> bool:
    text = query_arg(request, name)
    if text is None:
        return default
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise MatrixError(400, Codes.INVALID_PARAM, f"{name} must be true or false")
