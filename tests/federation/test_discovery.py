"""Server discovery against a real DNS server (twisted.names) and a real HTTPS
`.well-known` server on loopback, standing in for the names under test."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from twisted.internet import reactor
from twisted.internet.defer import fail, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint, wrapClientTLS
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.names import client as names_client
from twisted.names import dns
from twisted.names.common import ResolverBase
from twisted.names.error import DNSNameError
from twisted.names.server import DNSServerFactory
from twisted.web import server
from twisted.web.client import Agent
from twisted.web.iweb import IAgentEndpointFactory
from twisted.web.resource import Resource
from zope.interface import implementer

from federation.transport.discovery import (
    ResolvedServer,
    ServerResolver,
    TwistedSrvLookup,
    WellKnownLookup,
    order_srv_records,
)
from homeserver.tls import server_tls_options
from tests.federation.certs import TestCA
from tests.federation.reactor_thread import call_in_reactor, run_in_reactor

SRV = {
    "_matrix-fed._tcp.srvtarget.test": [(10, 5, 8450, "node1.test"), (20, 0, 8451, "node2.test")],
    "_matrix-fed._tcp.plain.test": [(0, 0, 8452, "fed.plain.test")],
    "_matrix._tcp.legacy.test": [(0, 0, 8453, "old.legacy.test")],
    "_matrix-fed._tcp.none.test": [(0, 0, 0, ".")],
}
WELL_KNOWN: dict[str, tuple[int, bytes, dict[str, str]]] = {
    "delegating.test": (200, b'{"m.server": "target.test:8449"}', {}),
    "ip.test": (200, b'{"m.server": "127.0.0.7"}', {}),
    "srvdelegate.test": (200, b'{"m.server": "srvtarget.test"}', {}),
    "redirect.test": (302, b"", {"Location": "/.well-known/matrix/moved"}),
    "loop.test": (302, b"", {"Location": "https://loop.test/.well-known/matrix/server"}),
    "garbage.test": (200, b"not json", {}),
    "badname.test": (200, b'{"m.server": "not a name!"}', {}),
    "missing.test": (404, b"{}", {}),
    "short.test": (200, b'{"m.server": "short-target.test:1"}', {"Cache-Control": "max-age=0"}),
}
HOSTS = [*WELL_KNOWN, "plain.test", "legacy.test", "none.test"]


class Records(ResolverBase):
    """The zone our DNS server answers from: only SRV records."""

    def _lookup(self, name: bytes, cls: int, type: int, timeout: Any) -> Any:
        records = SRV.get(name.decode())
        if type != dns.SRV or records is None:
            return fail(DNSNameError(name))
        answers = [dns.RRHeader(name, dns.SRV, ttl=60,
                                payload=dns.Record_SRV(prio, weight, port, target, ttl=60))
                   for prio, weight, port, target in records]
        return succeed((answers, [], []))


class WellKnownSite(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.fetches: list[str] = []

    def render_GET(self, request: server.Request) -> bytes:
        host = request.getHeader("host") or ""
        self.fetches.append(f"{host}{request.path.decode()}")
        if request.path == b"/.well-known/matrix/moved":
            return json.dumps({"m.server": "moved-target.test:7"}).encode()
        status, body, headers = WELL_KNOWN.get(host, (404, b"{}", {}))
        request.setResponseCode(status)
        for name, value in headers.items():
            request.setHeader(name, value)
        return body


@implementer(IAgentEndpointFactory)
class AllToLoopback:
    """Every https://<name> goes to the loopback server, checked for <name>."""

    def __init__(self, port: int, ca: Certificate) -> None:
        self._port = port
        self._ca = ca

    def endpointForURI(self, uri: Any) -> Any:
        tls = optionsForClientTLS(uri.host.decode(), trustRoot=self._ca)
        return wrapClientTLS(tls, TCP4ClientEndpoint(reactor, "127.0.0.1", self._port))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerResolver,
                                                                      WellKnownSite]]:
    ca = TestCA(tmp_path_factory.mktemp("discovery-ca"))
    cert = ca.issue(dns_names=HOSTS)
    site = WellKnownSite()
    https = call_in_reactor(reactor.listenSSL, 0, server.Site(site),  # type: ignore[attr-defined]
                            server_tls_options(cert.cert_path, cert.key_path), 50, "127.0.0.1")
    udp = call_in_reactor(reactor.listenUDP, 0,  # type: ignore[attr-defined]
                          dns.DNSDatagramProtocol(DNSServerFactory(clients=[Records()])),
                          "127.0.0.1")

    def build() -> ServerResolver:
        agent = Agent.usingEndpointFactory(reactor, AllToLoopback(
            https.getHost().port, Certificate.loadPEM(ca.cert_path.read_bytes())))
        names = names_client.Resolver(servers=[("127.0.0.1", udp.getHost().port)])
        return ServerResolver(WellKnownLookup(agent, reactor), TwistedSrvLookup(reactor, names))

    yield call_in_reactor(build), site
    call_in_reactor(https.stopListening)
    call_in_reactor(udp.stopListening)


def resolve(world: tuple[ServerResolver, WellKnownSite], name: str) -> ResolvedServer:
    resolver = world[0]
    return run_in_reactor(lambda: resolver.resolve(name))


@pytest.mark.parametrize("name, expected", [
    ("127.0.0.5", ResolvedServer("127.0.0.5", "127.0.0.5", (("127.0.0.5", 8448),))),
    ("127.0.0.5:9000", ResolvedServer("127.0.0.5:9000", "127.0.0.5", (("127.0.0.5", 9000),))),
    ("[::1]:9000", ResolvedServer("[::1]:9000", "::1", (("::1", 9000),))),
    ("[::1]", ResolvedServer("[::1]", "::1", (("::1", 8448),))),
    ("plain.test:9001", ResolvedServer("plain.test:9001", "plain.test",
                                       (("plain.test", 9001),))),
])
def test_ip_literals_and_explicit_ports_connect_directly(world: Any, name: str,
                                                         expected: ResolvedServer) -> None:
    before = len(world[1].fetches)
    assert resolve(world, name) == expected
    assert len(world[1].fetches) == before  # no .well-known asked


def test_well_known_delegation_with_a_port_uses_the_delegated_name(world: Any) -> None:
    assert resolve(world, "delegating.test") == ResolvedServer(
        "target.test:8449", "target.test", (("target.test", 8449),))


def test_well_known_delegation_to_an_ip_literal(world: Any) -> None:
    assert resolve(world, "ip.test") == ResolvedServer(
        "127.0.0.7", "127.0.0.7", (("127.0.0.7", 8448),))


def test_delegated_name_without_port_goes_through_srv(world: Any) -> None:
    assert resolve(world, "srvdelegate.test") == ResolvedServer(
        "srvtarget.test", "srvtarget.test", (("node1.test", 8450), ("node2.test", 8451)))


def test_redirects_are_followed(world: Any) -> None:
    assert resolve(world, "redirect.test").host_header == "moved-target.test:7"


@pytest.mark.parametrize("host", ["loop.test", "garbage.test", "badname.test", "missing.test"])
def test_an_unusable_well_known_falls_back_to_port_8448(world: Any, host: str) -> None:
    assert resolve(world, host) == ResolvedServer(host, host, ((host, 8448),))


def test_without_well_known_srv_then_legacy_srv_then_8448(world: Any) -> None:
    assert resolve(world, "plain.test") == ResolvedServer(
        "plain.test", "plain.test", (("fed.plain.test", 8452),))
    assert resolve(world, "legacy.test") == ResolvedServer(
        "legacy.test", "legacy.test", (("old.legacy.test", 8453),))
    # A "." target: the service is explicitly not offered.
    assert resolve(world, "none.test").targets == (("none.test", 8448),)


def test_well_known_answers_are_cached_and_failures_too(world: Any) -> None:
    site = world[1]
    for host in ("delegating.test", "missing.test"):
        resolve(world, host)
        count = len(site.fetches)
        resolve(world, host)
        assert len(site.fetches) == count, host


def test_a_max_age_of_zero_is_not_cached(world: Any) -> None:
    site = world[1]
    resolve(world, "short.test")
    count = len(site.fetches)
    assert resolve(world, "short.test").host_header == "short-target.test:1"
    assert len(site.fetches) == count + 1


def test_srv_records_are_ordered_by_priority() -> None:
    records = [(20, 0, "c.test.", 3), (10, 0, "a.test", 1), (10, 100, "b.test", 2)]
    ordered = order_srv_records(records)
    assert set(ordered[:2]) == {("a.test", 1), ("b.test", 2)}
    assert ordered[2] == ("c.test", 3)
    assert order_srv_records([(0, 0, ".", 0)]) == []
