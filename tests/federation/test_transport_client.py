"""The outgoing federation client against real TLS servers on loopback:
X-Matrix signing, Host header, certificate checks, errors, backoff, limits."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import reactor
from twisted.web import server
from twisted.web.resource import Resource

from federation.protocol.request_auth import parse_authorization, verify_request
from federation.protocol.signing import generate_server_key
from federation.transport.backoff import Backoff
from federation.transport.client import (
    DestinationUnreachable,
    FederationClient,
    HttpResponseError,
    encode_path,
)
from federation.transport.discovery import ServerResolver
from federation.transport.tls import FederationTlsPolicy
from homeserver.tls import server_tls_options
from tests.federation.certs import IssuedCert, TestCA
from tests.federation.reactor_thread import call_in_reactor, run_in_reactor

HOST = "127.0.0.1"
ORIGIN_KEY = generate_server_key("origin.test", "k1")


class NoDelegation:
    """IP-literal destinations never reach the well-known or SRV steps."""

    async def delegated_server(self, host: str) -> str | None:
        raise AssertionError("an IP literal needs no .well-known")

    async def lookup(self, name: str) -> list[tuple[str, int]]:
        raise AssertionError("an IP literal needs no SRV lookup")


class Recorder(Resource):
    """Answers by path; remembers every request it saw."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[dict[str, Any]] = []

    def render(self, request: server.Request) -> Any:
        body = request.content.read()
        self.seen.append({
            "method": request.method.decode(), "uri": request.uri.decode(),
            "host": request.getHeader("host"), "auth": request.getHeader("authorization"),
            "body": json.loads(body) if body else None,
        })
        path = request.path.decode()
        if path == "/slow":
            return server.NOT_DONE_YET
        status, payload = {
            "/error": (403, b'{"errcode":"M_FORBIDDEN","error":"no"}'),
            "/boom": (500, b'{"errcode":"M_UNKNOWN","error":"boom"}'),
            "/big": (200, b'{"x":"' + b"a" * 200_000 + b'"}'),
            "/notjson": (200, b"hello"),
        }.get(path, (200, b'{"ok":true}'))
        request.setResponseCode(status)
        return payload


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("client-ca"))


def _listen(cert: IssuedCert) -> tuple[Recorder, Any]:
    recorder = Recorder()
    options = server_tls_options(cert.cert_path, cert.key_path)
    port = call_in_reactor(reactor.listenSSL, 0, server.Site(recorder), options,  # type: ignore[attr-defined]
                           50, HOST)
    return recorder, port


@pytest.fixture
def remote(ca: TestCA) -> Iterator[tuple[Recorder, str]]:
    """A TLS server with a certificate for 127.0.0.1 from the test CA."""
    recorder, port = _listen(ca.issue(ips=[HOST]))
    yield recorder, f"{HOST}:{port.getHost().port}"
    call_in_reactor(port.stopListening)


def _client(ca_path: Path | None, verify: bool = True, max_bytes: int = 100_000
            ) -> FederationClient:
    lookup = NoDelegation()
    return call_in_reactor(lambda: FederationClient(
        reactor, ORIGIN_KEY, ServerResolver(lookup, lookup),
        FederationTlsPolicy(ca_path, verify), Backoff(2.0, 600.0),
        max_response_bytes=max_bytes))


def test_requests_are_signed_and_sent_to_the_server_name(
        ca: TestCA, remote: tuple[Recorder, str]) -> None:
    recorder, destination = remote
    client = _client(ca.cert_path)
    path = encode_path("/_matrix/federation/v1/send/%s", "txn/1 2")
    answer = run_in_reactor(lambda: client.put_json(
        destination, path, {"pdus": []}, {"v": ["$a", "$b c"], "limit": "5"}))
    assert answer == {"ok": True}
    seen = recorder.seen[-1]
    assert seen["uri"] == "/_matrix/federation/v1/send/txn%2F1%202?v=%24a&v=%24b%20c&limit=5"
    assert seen["host"] == destination  # spec: Host is the server name, port included
    assert seen["body"] == {"pdus": []}
    auth = parse_authorization(seen["auth"])
    assert (auth.origin, auth.destination, auth.key_id) == ("origin.test", destination,
                                                            "ed25519:k1")
    verify_request(auth, "PUT", seen["uri"], destination, seen["body"], ORIGIN_KEY.verify_key)


def test_a_get_signs_without_content(ca: TestCA, remote: tuple[Recorder, str]) -> None:
    recorder, destination = remote
    client = _client(ca.cert_path)
    assert run_in_reactor(lambda: client.get_json(destination, "/x")) == {"ok": True}
    seen = recorder.seen[-1]
    verify_request(parse_authorization(seen["auth"]), "GET", "/x", destination, None,
                   ORIGIN_KEY.verify_key)


def test_an_error_answer_carries_status_and_errcode_and_does_not_back_off(
        ca: TestCA, remote: tuple[Recorder, str]) -> None:
    _recorder, destination = remote
    client = _client(ca.cert_path)
    with pytest.raises(HttpResponseError) as raised:
        run_in_reactor(lambda: client.get_json(destination, "/error"))
    assert (raised.value.status, raised.value.errcode) == (403, "M_FORBIDDEN")
    assert raised.value.body["error"] == "no"
    assert client.backoff.retry_in(destination, reactor.seconds()) == 0  # type: ignore[attr-defined]


def test_a_5xx_backs_off_until_success_and_joins_may_ignore_it(
        ca: TestCA, remote: tuple[Recorder, str]) -> None:
    recorder, destination = remote
    client = _client(ca.cert_path)
    with pytest.raises(HttpResponseError):
        run_in_reactor(lambda: client.get_json(destination, "/boom"))
    before = len(recorder.seen)
    with pytest.raises(DestinationUnreachable, match="backed off"):
        run_in_reactor(lambda: client.get_json(destination, "/x"))
    assert len(recorder.seen) == before  # not even tried
    assert run_in_reactor(lambda: client.get_json(destination, "/x",
                                                  ignore_backoff=True)) == {"ok": True}
    assert client.backoff.state(destination) is None  # success resets
    assert run_in_reactor(lambda: client.get_json(destination, "/x")) == {"ok": True}


def test_an_unreachable_destination_backs_off_exponentially(ca: TestCA) -> None:
    client = _client(ca.cert_path)
    closed = call_in_reactor(reactor.listenTCP, 0, server.Site(Resource()), 50, HOST)  # type: ignore[attr-defined]
    destination = f"{HOST}:{closed.getHost().port}"
    call_in_reactor(closed.stopListening)
    with pytest.raises(DestinationUnreachable):
        run_in_reactor(lambda: client.get_json(destination, "/x"))
    first = client.backoff.state(destination)
    assert first is not None and first.failures == 1
    with pytest.raises(DestinationUnreachable):
        run_in_reactor(lambda: client.get_json(destination, "/x", ignore_backoff=True))
    second = client.backoff.state(destination)
    assert second is not None and second.failures == 2
    assert second.retry_at - first.retry_at > 1.9  # 2 s, then 4 s


def test_responses_over_the_size_cap_are_refused(ca: TestCA,
                                                 remote: tuple[Recorder, str]) -> None:
    _recorder, destination = remote
    client = _client(ca.cert_path, max_bytes=100_000)
    with pytest.raises(DestinationUnreachable, match="ResponseTooLarge"):
        run_in_reactor(lambda: client.get_json(destination, "/big"))


def test_a_silent_server_times_out(ca: TestCA, remote: tuple[Recorder, str]) -> None:
    _recorder, destination = remote
    client = _client(ca.cert_path)
    with pytest.raises(DestinationUnreachable, match="TimeoutError"):
        run_in_reactor(lambda: client.get_json(destination, "/slow", timeout_s=0.5))


def test_a_2xx_that_is_not_json_is_an_error(ca: TestCA, remote: tuple[Recorder, str]) -> None:
    _recorder, destination = remote
    client = _client(ca.cert_path)
    with pytest.raises(HttpResponseError) as raised:
        run_in_reactor(lambda: client.get_json(destination, "/notjson"))
    assert raised.value.status == 200 and raised.value.body == b"hello"


def test_an_untrusted_certificate_is_refused_unless_verification_is_off(
        tmp_path: Path, remote: tuple[Recorder, str]) -> None:
    _recorder, destination = remote
    other_ca = TestCA(tmp_path / "other")
    trusting_another_ca = _client(other_ca.cert_path)
    with pytest.raises(DestinationUnreachable):
        run_in_reactor(lambda: trusting_another_ca.get_json(destination, "/x"))
    insecure = _client(None, verify=False)
    assert run_in_reactor(lambda: insecure.get_json(destination, "/x")) == {"ok": True}


def test_a_certificate_for_another_address_is_refused(ca: TestCA) -> None:
    _recorder, port = _listen(ca.issue(ips=["127.0.0.9"], dns_names=["localhost"]))
    try:
        client = _client(ca.cert_path)
        with pytest.raises(DestinationUnreachable):
            run_in_reactor(lambda: client.get_json(f"{HOST}:{port.getHost().port}", "/x"))
    finally:
        call_in_reactor(port.stopListening)


@pytest.mark.parametrize("verify", [True, False])
def test_sni_is_sent_for_host_names_and_never_for_ip_literals(ca: TestCA, verify: bool) -> None:
    cert = ca.issue(ips=[HOST], dns_names=["localhost"])
    options = server_tls_options(cert.cert_path, cert.key_path)
    names: list[bytes | None] = []
    options.getContext().set_tlsext_servername_callback(
        lambda connection: names.append(connection.get_servername()))
    port = call_in_reactor(reactor.listenSSL, 0, server.Site(Recorder()), options,  # type: ignore[attr-defined]
                           50, HOST)
    try:
        client = _client(ca.cert_path, verify=verify)
        number = port.getHost().port
        assert run_in_reactor(lambda: client.get_json(f"{HOST}:{number}", "/x")) == {"ok": True}
        assert run_in_reactor(lambda: client.get_json(f"localhost:{number}", "/x")) == {"ok": True}
        assert names == [None, b"localhost"]
    finally:
        call_in_reactor(port.stopListening)
