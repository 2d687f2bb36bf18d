"""TURN credentials for calls (spec: `GET /voip/turnServer`).

The "TURN REST API" scheme coturn implements with `use-auth-secret`: the
username is `<expiry unix seconds>:<user ID>` and the password is the
standard (padded) base64 of HMAC-SHA1(shared secret, username), so the TURN
server can check a credential without asking us.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

from ..clock import Clock


def turn_password(shared_secret: str, username: str) -> str:
    mac = hmac.new(shared_secret.encode("utf-8"), username.encode("utf-8"), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii")


class VoipHandler:
    def __init__(self, clock: Clock, uris: list[str], shared_secret: str | None,
                 lifetime_s: int) -> None:
        self._clock = clock
        self._uris = list(uris)
        self._secret = shared_secret
        self._lifetime_s = lifetime_s

    def turn_server(self, user_id: str) -> dict[str, Any]:
        """Credentials valid for the configured lifetime; `{}` without TURN (as Synapse)."""
        if not self._uris or not self._secret or self._lifetime_s <= 0:
            return {}
        expiry = int(self._clock.time()) + self._lifetime_s
        username = f"{expiry}:{user_id}"
        return {"username": username, "password": turn_password(self._secret, username),
                "ttl": self._lifetime_s, "uris": list(self._uris)}
