"""Homeserver discovery from a user ID (spec: Client-Server API, server discovery).

`.well-known/matrix/client` is fetched over https, except for loopback hosts
(localhost, 127.0.0.0/8, ::1), which have no certificates and use http.
"""

from __future__ import annotations

import ipaddress
import json
from urllib.parse import urlparse

import aiohttp

from client.sdk.errors import DiscoveryError

WELL_KNOWN_PATH = "/.well-known/matrix/client"


def server_name_of(user_id: str) -> str:
    """`@alice:example.org:8448` -> `example.org:8448`."""
    if not user_id.startswith("@") or ":" not in user_id:
        raise DiscoveryError(f"{user_id!r} is not a full user ID (@user:server); "
                             "give --homeserver or the full user ID")
    return user_id.split(":", 1)[1]


def is_loopback_host(server_name: str) -> bool:
    host = urlparse(f"//{server_name}").hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def base_url_for(server_name: str) -> str:
    scheme = "http" if is_loopback_host(server_name) else "https"
    return f"{scheme}://{server_name}"


async def discover_homeserver(user_id: str, session: aiohttp.ClientSession) -> str:
    """The homeserver base URL for `user_id`; DiscoveryError on FAIL_PROMPT/FAIL_ERROR."""
    server_name = server_name_of(user_id)
    well_known = base_url_for(server_name) + WELL_KNOWN_PATH
    try:
        async with session.get(well_known, timeout=aiohttp.ClientTimeout(total=15),
                               allow_redirects=True) as response:
            status, raw = response.status, await response.read()
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise DiscoveryError(f"cannot fetch {well_known}: {exc}") from exc
    if status == 404:  # IGNORE: the server name itself is the homeserver
        base_url = base_url_for(server_name)
    else:
        base_url = _base_url_from(well_known, status, raw)
    await _validate(base_url, session)
    return base_url


def _base_url_from(well_known: str, status: int, raw: bytes) -> str:
    if status != 200 or not raw:
        raise DiscoveryError(f"{well_known} answered HTTP {status}")
    try:
        body = json.loads(raw)
    except ValueError:
        raise DiscoveryError(f"{well_known} is not JSON") from None
    homeserver = body.get("m.homeserver") if isinstance(body, dict) else None
    base_url = homeserver.get("base_url") if isinstance(homeserver, dict) else None
    if not isinstance(base_url, str) or not base_url:
        raise DiscoveryError(f"{well_known} has no m.homeserver.base_url")
    parsed = urlparse(base_url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise DiscoveryError(f"{well_known} gives an invalid base_url {base_url!r}")
    return base_url.rstrip("/")


async def _validate(base_url: str, session: aiohttp.ClientSession) -> None:
    """FAIL_ERROR unless the base URL answers /_matrix/client/versions."""
    try:
        async with session.get(base_url + "/_matrix/client/versions",
                               timeout=aiohttp.ClientTimeout(total=15)) as response:
            body = await response.json(content_type=None)
            if response.status == 200 and isinstance(body, dict) and "versions" in body:
                return
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError):
        pass
    raise DiscoveryError(f"{base_url} is not a Matrix homeserver (no /_matrix/client/versions)")
