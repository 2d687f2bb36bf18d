"""Local media: the `media` table and the files under `data_dir/media`.

A file is written (and fsynced) before its row is inserted, so a row always
points at a complete file. File I/O runs on the reactor's thread pool, never
inside a database transaction (a large upload must not hold SQLite's writer).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from twisted.internet.threads import deferToThreadPool

from .database import Database
from .schema import media

T = TypeVar("T")


@dataclass(frozen=True)
class MediaInfo:
    media_id: str
    user_id: str
    content_type: str
    upload_name: str | None
    size: int
    created_ts: int


class MediaStore:
    def __init__(self, db: Database, media_dir: Path, reactor: Any) -> None:
        self._db = db
        self._dir = media_dir
        self._reactor = reactor

    def path_of(self, media_id: str) -> Path:
        """Two levels of fan-out keep directories small."""
        return self._dir / media_id[:2] / media_id[2:4] / media_id

    async def _in_thread(self, fn: Callable[[], T]) -> T:
        if getattr(self._db, "_inline", False):
            return fn()
        result: T = await deferToThreadPool(self._reactor, self._reactor.getThreadPool(), fn)
        return result

    async def store(self, info: MediaInfo, data: bytes) -> None:
        await self._in_thread(lambda: self._write_file(info.media_id, data))

        def txn(conn: Connection) -> None:
            conn.execute(sa.insert(media).values(
                media_id=info.media_id, user_id=info.user_id, content_type=info.content_type,
                upload_name=info.upload_name, size=info.size, created_ts=info.created_ts))

        await self._db.run("store_media", txn)

    def _write_file(self, media_id: str, data: bytes) -> None:
        target = self.path_of(media_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise

    async def info(self, media_id: str) -> MediaInfo | None:
        def txn(conn: Connection) -> MediaInfo | None:
            row = conn.execute(sa.select(media).where(media.c.media_id == media_id)).first()
            if row is None:
                return None
            return MediaInfo(row.media_id, row.user_id, row.content_type, row.upload_name,
                             int(row.size), int(row.created_ts))

        return await self._db.run("media_info", txn)

    async def read(self, media_id: str) -> bytes | None:
        path = self.path_of(media_id)

        def read_file() -> bytes | None:
            try:
                return path.read_bytes()
            except FileNotFoundError:
                return None

        return await self._in_thread(read_file)
