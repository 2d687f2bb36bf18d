"""Accounts on any test-bed server (ours or Synapse) over the Client-Server API."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import nio

from tests.harness import http_json

PASSWORD = "correct horse"


@dataclass(frozen=True)
class Account:
    user_id: str
    access_token: str
    device_id: str
    password: str
    base_url: str  # the client API of the account's server

    def client(self) -> nio.AsyncClient:
        """A matrix-nio client logged in as this account (close it when done)."""
        client = nio.AsyncClient(self.base_url, self.user_id)
        client.restore_login(self.user_id, self.device_id, self.access_token)
        return client

    def request(self, method: str, path: str, body: Any = None,
                query: dict[str, str | list[str]] | None = None) -> tuple[int, Any]:
        """An authenticated Client-Server request; `path` follows `/_matrix/client/v3`
        and is already percent-encoded (see `quote`)."""
        url = f"{self.base_url}/_matrix/client/v3{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query, doseq=True)
        return http_json(method, url, body, token=self.access_token)

    def join(self, room_id_or_alias: str, via: Iterable[str] = ()) -> tuple[int, Any]:
        """`POST /join/{roomIdOrAlias}` with `via` (and the older `server_name`):
        v12 room IDs name no server, so a remote join by ID needs them."""
        servers = list(via)
        query = {"via": servers, "server_name": servers} if servers else None
        return self.request("POST", f"/join/{quote(room_id_or_alias)}", {}, query)


def quote(segment: str) -> str:
    """One percent-encoded path segment (room IDs, aliases, user IDs, event IDs)."""
    return urllib.parse.quote(segment, safe="")


def register_open(base_url: str, localpart: str, password: str = PASSWORD) -> Account:
    """Open registration with the dummy stage, the way a client does it:
    ask for the flows (which opens a session), then complete `m.login.dummy`."""
    url = f"{base_url}/_matrix/client/v3/register"
    body: dict[str, object] = {"username": localpart, "password": password}
    status, answer = http_json("POST", url, body)
    if status == 401 and isinstance(answer, dict):
        auth = {"type": "m.login.dummy", **({"session": answer["session"]}
                                            if "session" in answer else {})}
        status, answer = http_json("POST", url, {**body, "auth": auth})
    if status != 200 or not isinstance(answer, dict):
        raise AssertionError(f"registration of {localpart} on {base_url}: {status} {answer}")
    return Account(answer["user_id"], answer["access_token"], answer["device_id"], password,
                   base_url)
