"""The federation half of the composition root: builds the Server-Server API
(keys, transport, inbound and outbound federation) from the parts `app.build`
already made, and returns the federation listener's site."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.web.server import Site

from .config import Config
from .rest.http import JsonRouter, make_site


@dataclass
class FederationParts:
    """What the client half of the server hands the federation half."""

    config: Config
    reactor: Any
    db: Any
    clock: Any
    writer: Any
    events: Any
    rooms: Any
    users: Any
    stream: Any
    notifier: Any


def build_federation(parts: FederationParts) -> Site:
    router = JsonRouter()
    # Keys, request authentication and the outgoing client are registered here;
    # then inbound transactions, membership handshakes, reads and the sender.
    return make_site(router, parts.config.max_request_body_bytes)
