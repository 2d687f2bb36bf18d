"""Wires the call engine to a `MatrixClient`: events go out with `send_event`, every
timeline event comes in through `on_timeline`, ICE servers come from `/voip/turnServer`."""

from __future__ import annotations

import logging
from typing import Any

from client.calls.engine import CallEngine, CallOptions
from client.calls.ice import IceSettings, servers_from_turn_answer
from client.sdk.client import MatrixClient

logger = logging.getLogger(__name__)


class MatrixSignalling:
    def __init__(self, client: MatrixClient) -> None:
        self.client = client

    async def send(self, room_id: str, event_type: str, content: dict[str, Any]) -> None:
        await self.client.send_event(room_id, event_type, content)


async def ice_settings(client: MatrixClient, relay_only: bool = False,
                       loopback_only: bool = False) -> IceSettings:
    """The homeserver's TURN servers (none at all when it offers none)."""
    servers = servers_from_turn_answer(await client.turn_server())
    if relay_only and not servers:
        logger.warning("relay-only calls asked for, but the homeserver offers no TURN server")
    return IceSettings(servers=servers, relay_only=relay_only, loopback_only=loopback_only)


def attach_engine(client: MatrixClient, options: CallOptions) -> CallEngine:
    """A call engine fed by the client's timeline; call before `client.start()`."""
    engine = CallEngine(client.user_id, MatrixSignalling(client), options)
    client.on_timeline(engine.handle_event)
    return engine
