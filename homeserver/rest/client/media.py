"""The content repository's endpoints: upload, download (authenticated and
legacy) and config. Downloads are raw bytes, written here, not JSON."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from twisted.web.http import Request

from ...handlers.auth import Authenticator
from ...handlers.media import MediaContent, MediaHandler
from ..http import CORS_HEADERS, JsonRouter, query_arg, read_body
from .common import requester

UPLOAD_PATHS = ("/_matrix/media/v3/upload", "/_matrix/media/r0/upload")
# Types a browser may render inline without running script (as Synapse's list).
INLINE_TYPES = frozenset({
    "text/plain", "text/csv", "application/json", "application/ld+json",
    "image/jpeg", "image/gif", "image/png", "image/apng", "image/webp", "image/avif",
    "video/mp4", "video/webm", "video/ogg", "video/quicktime",
    "audio/mp4", "audio/webm", "audio/aac", "audio/mpeg", "audio/ogg", "audio/wave",
    "audio/wav", "audio/x-wav", "audio/x-pn-wav", "audio/flac", "audio/x-flac",
})


def register(router: JsonRouter, auth: Authenticator, media: MediaHandler) -> None:
    async def upload(request: Request) -> tuple[int, Any]:
        who = await requester(auth, request)
        content_type = request.getHeader(b"content-type")
        uri = await media.upload(who.user_id, read_body(request),
                                 content_type.decode("latin-1") if content_type else None,
                                 query_arg(request, "filename"))
        return 200, {"content_uri": uri}

    async def config(request: Request) -> tuple[int, Any]:
        await requester(auth, request)
        return 200, media.config()

    async def download(request: Request, server_name: str, media_id: str,
                       file_name: str | None = None) -> tuple[int, Any]:
        await requester(auth, request)
        return _send(request, await media.download(server_name, media_id), file_name)

    async def legacy_download(request: Request, server_name: str, media_id: str,
                              file_name: str | None = None) -> tuple[int, Any]:
        return _send(request, await media.download(server_name, media_id), file_name)

    for path in UPLOAD_PATHS:
        router.add("POST", path, upload)
    router.add("GET", "/_matrix/client/v1/media/config", config)
    router.add("GET", "/_matrix/media/v3/config", config)
    for prefix, handler in (("/_matrix/client/v1/media", download),
                            ("/_matrix/media/v3", legacy_download),
                            ("/_matrix/media/r0", legacy_download)):
        router.add("GET", f"{prefix}/download/{{server_name}}/{{media_id}}", handler)
        router.add("GET", f"{prefix}/download/{{server_name}}/{{media_id}}/{{file_name}}",
                   handler)


def _send(request: Request, content: MediaContent, file_name: str | None) -> tuple[int, Any]:
    """Write the bytes with safe headers; the router sees a finished request."""
    info = content.info
    base_type = info.content_type.split(";", 1)[0].strip().lower()
    disposition = "inline" if base_type in INLINE_TYPES else "attachment"
    name = file_name or info.upload_name
    if name:
        disposition += f"; filename*=utf-8''{quote(name, safe='')}"
    request.setResponseCode(200)
    request.setHeader(b"Content-Type", info.content_type.encode("latin-1", "replace"))
    request.setHeader(b"Content-Disposition", disposition.encode("ascii"))
    request.setHeader(b"Content-Length", str(len(content.data)).encode())
    # Media is user content: never let a browser run it as part of our origin.
    request.setHeader(b"Content-Security-Policy",
                      b"sandbox; default-src 'none'; script-src 'none'; plugin-types "
                      b"application/pdf; style-src 'unsafe-inline'; media-src 'self'; "
                      b"object-src 'self';")
    request.setHeader(b"Cross-Origin-Resource-Policy", b"cross-origin")
    request.setHeader(b"X-Content-Type-Options", b"nosniff")
    request.setHeader(b"Cache-Control", b"private, max-age=86400")
    for header, value in CORS_HEADERS.items():
        request.setHeader(header, value)
    if request.method != b"HEAD":
        request.write(content.data)
    request.finish()
    return 200, None
