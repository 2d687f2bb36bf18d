"""ICE configuration: servers from `/voip/turnServer`, relay-only, and loopback-only.

- aiortc falls back to a public STUN server when given `iceServers=None`, so the
  configuration always carries an explicit list (empty when the homeserver offers none).
- aiortc uses only the first STUN and the first TURN URL of its servers.
- Loopback-only: aioice never gathers 127.0.0.1 host candidates and offers the machine's
  external interfaces instead. With `loopback_only` every host candidate is 127.0.0.1, so
  calls between processes on one machine keep every packet on 127.0.0.0/8 (the tests use
  it; a desktop never should). It replaces aioice's host-address lookup for the process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aioice.ice
from aiortc import RTCConfiguration, RTCIceServer
from aiortc.rtcconfiguration import RTCIceTransportPolicy

_original_host_addresses = aioice.ice.get_host_addresses


@dataclass
class IceSettings:
    servers: list[RTCIceServer] = field(default_factory=list)
    relay_only: bool = False
    loopback_only: bool = False

    def rtc_configuration(self) -> RTCConfiguration:
        policy = RTCIceTransportPolicy.RELAY if self.relay_only else RTCIceTransportPolicy.ALL
        return RTCConfiguration(iceServers=list(self.servers), iceTransportPolicy=policy)

    @property
    def has_turn(self) -> bool:
        return any(str(url).startswith(("turn:", "turns:"))
                   for server in self.servers for url in _urls(server))


def _urls(server: RTCIceServer) -> list[str]:
    return [server.urls] if isinstance(server.urls, str) else list(server.urls)


def servers_from_turn_answer(answer: dict[str, Any]) -> list[RTCIceServer]:
    """`/voip/turnServer`'s answer as aiortc servers; `{}` (no TURN) gives none at all."""
    uris = [uri for uri in answer.get("uris") or [] if isinstance(uri, str)]
    if not uris:
        return []
    turn = [uri for uri in uris if uri.startswith(("turn:", "turns:"))]
    stun = [uri for uri in uris if uri.startswith("stun:")]
    servers = []
    if turn:
        servers.append(RTCIceServer(urls=turn, username=answer.get("username"),
                                    credential=answer.get("password")))
    if stun:
        servers.append(RTCIceServer(urls=stun))
    return servers


def _loopback_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    return ["127.0.0.1"] if use_ipv4 else []


def set_loopback_only(enabled: bool) -> None:
    """Gather host candidates on 127.0.0.1 only (process-wide), or restore aioice's lookup."""
    aioice.ice.get_host_addresses = _loopback_addresses if enabled else _original_host_addresses
