"""The content repository (spec: Client-Server API, Content repository).

Local media only: uploads get `mxc://<server_name>/<media_id>`; media of other
servers is not fetched over federation yet, so it is not found.
"""

from __future__ import annotations

import re
import secrets
import string
from dataclasses import dataclass

from federation.protocol.errors import Codes, MatrixError

from ..clock import Clock
from ..storage.media import MediaInfo, MediaStore

MEDIA_ID_ALPHABET = string.ascii_letters + string.digits
MEDIA_ID_LENGTH = 24
_MEDIA_ID = re.compile(r"[A-Za-z0-9_-]{1,255}", re.ASCII)
_CONTENT_TYPE = re.compile(r"[\x21-\x7e]+/[\x21-\x7e]+( *;[\x20-\x7e]*)?", re.ASCII)
MAX_FILENAME_CHARS = 255


@dataclass(frozen=True)
class MediaContent:
    info: MediaInfo
    data: bytes


class MediaHandler:
    def __init__(self, store: MediaStore, clock: Clock, server_name: str,
                 max_upload_bytes: int) -> None:
        self._store = store
        self._clock = clock
        self.server_name = server_name
        self.max_upload_bytes = max_upload_bytes

    def config(self) -> dict[str, int]:
        return {"m.upload.size": self.max_upload_bytes}

    async def upload(self, user_id: str, data: bytes, content_type: str | None,
                     filename: str | None) -> str:
        """Store an upload; returns its mxc:// URI."""
        if len(data) > self.max_upload_bytes:
            raise MatrixError(413, Codes.TOO_LARGE,
                              f"Upload exceeds {self.max_upload_bytes} bytes")
        content_type = _checked_content_type(content_type)
        if filename is not None and (len(filename) > MAX_FILENAME_CHARS or "\x00" in filename
                                     or "/" in filename):
            raise MatrixError(400, Codes.INVALID_PARAM, "Invalid filename")
        media_id = "".join(secrets.choice(MEDIA_ID_ALPHABET) for _ in range(MEDIA_ID_LENGTH))
        info = MediaInfo(media_id, user_id, content_type, filename or None, len(data),
                         self._clock.time_ms())
        await self._store.store(info, data)
        return f"mxc://{self.server_name}/{media_id}"

    async def download(self, server_name: str, media_id: str) -> MediaContent:
        if server_name != self.server_name or not _MEDIA_ID.fullmatch(media_id):
            raise MatrixError(404, Codes.NOT_FOUND, "Media not found")
        info = await self._store.info(media_id)
        data = await self._store.read(media_id) if info is not None else None
        if info is None or data is None:
            raise MatrixError(404, Codes.NOT_FOUND, "Media not found")
        return MediaContent(info, data)


def _checked_content_type(content_type: str | None) -> str:
    if not content_type:
        return "application/octet-stream"
    content_type = content_type.strip()
    if len(content_type) > 255 or not _CONTENT_TYPE.fullmatch(content_type):
        raise MatrixError(400, Codes.INVALID_PARAM, "Invalid Content-Type")
    return content_type
