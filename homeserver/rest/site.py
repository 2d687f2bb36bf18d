"""The HTTP server under the REST resources: Twisted's HTTP/1.1 protocol
(twisted.web.http) with a dispatch of our own instead of twisted.web.server.

twisted.web.server's Site and Request bring Perspective Broker, HTML
templating and an XML parser with them, about 2.5 MiB of every process, for
resource traversal, sessions and HTML error pages. A JSON API uses none of
them: each path prefix here has one resource, which renders the spec's JSON
itself (rest/http.py).
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from twisted.web import http

logger = logging.getLogger(__name__)

# What a resource's render() returns when it answers later (twisted.web.server's
# value, which autobahn's WebSocket resource returns).
NOT_DONE_YET = 1


class Renderable(Protocol):
    def render(self, request: Any) -> Any:
        """Answer `request`: bytes to send now, or NOT_DONE_YET."""


class ApiRequest(http.Request):
    """A request that stops buffering its body past the configured limit and
    is handed to its site's root resource.

    A POST body is never parsed as an HTML form: this API reads JSON only, a
    form's fields must not pose as query parameters, and Twisted's
    Content-Type parsing for forms builds an email message per POST."""

    max_body_bytes = 1_048_576
    # Request-target prefixes (media uploads) allowed bodies up to max_upload_bytes.
    upload_paths: tuple[bytes, ...] = ()
    max_upload_bytes = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, parsePOSTFormSubmission=False, **kwargs)
        self.body_bytes = 0
        self.body_too_large = False
        self.body_limit = self.max_body_bytes

    def gotLength(self, length: int | None) -> None:
        # The path is parsed only once the body is in; the channel has the request line's.
        target = getattr(self.channel, "_path", b"") or b""
        if self.upload_paths and target.startswith(self.upload_paths):
            self.body_limit = max(self.max_body_bytes, self.max_upload_bytes)
        if length is not None and length > self.body_limit:
            self.body_too_large = True
        super().gotLength(None if self.body_too_large else length)

    def handleContentChunk(self, data: bytes) -> None:
        self.body_bytes += len(data)
        if self.body_bytes > self.body_limit:
            self.body_too_large = True
            return
        if not self.body_too_large:
            super().handleContentChunk(data)

    def process(self) -> None:
        self.setHeader(b"Date", http.datetimeToString())
        try:
            body = self.channel.site.root.render(self)
        except Exception:  # resources answer their own errors; this is a bug
            logger.exception("500 on %s %s", self.method.decode("ascii", "replace"),
                             self.path.decode("ascii", "replace")[:200])
            body = b'{"errcode":"M_UNKNOWN","error":"Internal server error"}'
            self.setResponseCode(500)
            self.setHeader(b"Content-Type", b"application/json")
        if isinstance(body, bytes):  # answered now (resources here answer later)
            self.setHeader(b"Content-Length", b"%d" % len(body))
            self.write(body)
            self.finish()


class Root:
    """Sends a few exact paths (the WebSocket stream) to their own resources and
    everything else to the JSON router."""

    def __init__(self, router: Renderable, exact: dict[bytes, Renderable]) -> None:
        self._router = router
        self._exact = exact

    def render(self, request: http.Request) -> Any:
        return self._exact.get(request.path, self._router).render(request)


# The access log keeps the logger name Twisted's lines had ("twisted").
_access_log = logging.getLogger("twisted")


class ApiSite(http.HTTPFactory):
    """Serves `root` over HTTP/1.1. Each request's access-log line goes straight
    to the standard logging tree: Twisted's default passes it through its
    legacy and new log systems first, which cost more than the line itself (a
    few % of a message send)."""

    noisy = False

    def __init__(self, root: Renderable, request_class: type[ApiRequest]) -> None:
        super().__init__()
        self.root = root
        self.request_class = request_class

    def buildProtocol(self, addr: Any) -> Any:
        channel = super().buildProtocol(addr)
        channel.requestFactory = self.request_class  # type: ignore[union-attr]
        channel.site = self  # type: ignore[union-attr]
        return channel

    def log(self, request: http.Request) -> None:
        if _access_log.isEnabledFor(logging.INFO):
            _access_log.info("%s", self._logFormatter(self._logDateTime, request))


def make_site(root: Renderable, max_body_bytes: int, upload_paths: tuple[bytes, ...] = (),
              max_upload_bytes: int = 0) -> ApiSite:
    request_class = type("Request", (ApiRequest,), {
        "max_body_bytes": max_body_bytes, "upload_paths": upload_paths,
        "max_upload_bytes": max_upload_bytes})
    return ApiSite(root, request_class)
