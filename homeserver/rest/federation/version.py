"""`GET /_matrix/federation/v1/version`: which server software this is."""

from __future__ import annotations

from importlib import metadata
from typing import Any

from twisted.web.http import Request

from ..http import JsonRouter

SERVER_NAME = "Guildhall"


def _version() -> str:
    try:
        return metadata.version("guildhall")
    except metadata.PackageNotFoundError:
        return "0.1.0"


def register(router: JsonRouter) -> None:
    body = {"server": {"name": SERVER_NAME, "version": _version()}}

    async def version(request: Request) -> tuple[int, Any]:
        return 200, body

    router.add("GET", "/_matrix/federation/v1/version", version)
