"""Signing keys and X-Matrix authentication between real homeserver processes
on loopback (server names are `IP:port`, federation over HTTPS).

Signed requests are made by the test with a server's own signing key (read
from its config), so that forged and misdirected variants can be sent too;
the receiving server fetches the origin's keys from the origin over HTTPS.
"""

from __future__ import annotations

import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from signedjson.sign import verify_signed_json

from federation.protocol.request_auth import sign_request
from federation.protocol.signing import ServerKey, generate_server_key, verify_key_from_base64
from tests.federation.cluster import FederatedServer, tls_handshake
from tests.federation.loopback import next_address, reserve_port
from tests.harness import ROOT, HomeserverProcess, http_json

DAY_MS = 24 * 3600 * 1000


def signing_key(server: HomeserverProcess) -> ServerKey:
    raw = yaml.safe_load(server.config_path.read_text())
    return ServerKey.deserialize(server.server_name, raw["signing_key"])


def send_transaction(target: FederatedServer, key: ServerKey, txn_id: str, *,
                     destination: str | None = None, signed_body: Any = None,
                     signed_path: str | None = None, authorization: str | None = None
                     ) -> tuple[int, Any]:
    """`PUT /send/{txnId}` with an empty transaction, signed by `key` (or with
    the given parts of the signature changed)."""
    path = f"/_matrix/federation/v1/send/{txn_id}"
    body = {"origin": key.server_name, "origin_server_ts": int(time.time() * 1000),
            "pdus": []}
    if authorization is None:
        authorization = sign_request(key, "PUT", signed_path or path,
                                     destination or target.server_name,
                                     body if signed_body is None else signed_body)
    headers = {"Authorization": authorization} if authorization else {}
    return http_json("PUT", f"{target.federation_url}{path}", body, headers=headers,
                     context=target.ca.client_context())


def assert_unauthorized(answer: tuple[int, Any]) -> None:
    status, body = answer
    assert status == 401, answer
    assert body["errcode"] == "M_UNAUTHORIZED", answer


def check_key_document(document: dict[str, Any], server: HomeserverProcess) -> None:
    key = signing_key(server)
    assert document["server_name"] == server.server_name
    assert document["verify_keys"] == {key.key_id: {"key": key.verify_key_base64}}
    now = time.time() * 1000
    assert now + DAY_MS - 600_000 < document["valid_until_ts"] < now + DAY_MS + 600_000
    verify_signed_json(document, server.server_name, key.verify_key)


def test_version_and_own_keys_are_published(fed_servers: list[FederatedServer]) -> None:
    server = fed_servers[0]
    status, body = server.federation_get("/_matrix/federation/v1/version")
    assert status == 200 and body["server"]["name"] == "Guildhall"
    for path in ("/_matrix/key/v2/server", "/_matrix/key/v2/server/ed25519:whatever"):
        status, document = server.federation_get(path)
        assert status == 200
        check_key_document(document, server)
        assert document["old_verify_keys"] == {}


def test_a_server_fetches_another_s_keys_over_https_and_notarises_them(
        fed_servers: list[FederatedServer]) -> None:
    a, b = fed_servers[0], fed_servers[1]
    status, answer = a.federation_get(f"/_matrix/key/v2/query/{b.server_name}")
    assert status == 200, answer
    [document] = answer["server_keys"]
    check_key_document(document, b)  # B's own signature
    verify_signed_json(document, a.server_name, signing_key(a).verify_key)  # and A's
    status, answer = a.federation_post("/_matrix/key/v2/query", {"server_keys": {
        b.server_name: {signing_key(b).key_id: {"minimum_valid_until_ts": 0}},
        a.server_name: {}}})
    assert status == 200
    assert {d["server_name"] for d in answer["server_keys"]} == {a.server_name, b.server_name}


def test_notary_queries_with_bad_bodies_are_400(fed_servers: list[FederatedServer]) -> None:
    a = fed_servers[0]
    for body in ({}, {"server_keys": []}, {"server_keys": {"x.test": "no"}}):
        status, answer = a.federation_post("/_matrix/key/v2/query", body)
        assert status == 400 and answer["errcode"] == "M_BAD_JSON", (body, answer)


def test_a_signed_request_is_accepted(fed_servers: list[FederatedServer]) -> None:
    a, b = fed_servers[0], fed_servers[1]
    status, answer = send_transaction(b, signing_key(a), f"ok-{time.time()}")
    assert (status, answer) == (200, {"pdus": {}})
    # Old servers send no destination (tolerated); names may be in any case
    # and order, values bare.
    header = sign_request(signing_key(a), "PUT", "/_matrix/federation/v1/send/quirks",
                          b.server_name, {"origin": "set below"})
    params = dict(p.split("=", 1) for p in header.removeprefix("X-Matrix ").split(","))
    sig, key_id = params["sig"].strip('"'), params["key"].strip('"')
    quirky = f'x-matrix SIG={sig},Key={key_id} , origin={params["origin"]}'
    body = {"origin": "set below"}
    status, answer = http_json("PUT", f"{b.federation_url}/_matrix/federation/v1/send/quirks",
                               body, headers={"Authorization": quirky},
                               context=b.ca.client_context())
    assert status == 200, answer


def test_unsigned_forged_and_misdirected_requests_are_refused(
        fed_servers: list[FederatedServer]) -> None:
    a, b, c = fed_servers[0], fed_servers[1], fed_servers[2]
    key = signing_key(a)
    impostor = ServerKey(a.server_name, generate_server_key(a.server_name,
                                                            key.signing_key.version).signing_key)
    unknown_key = generate_server_key(a.server_name, "never_published")
    txn = f"bad-{time.time()}"
    assert_unauthorized(send_transaction(b, key, txn, authorization=""))
    assert_unauthorized(send_transaction(b, key, txn, authorization="Bearer abc"))
    assert_unauthorized(send_transaction(b, key, txn, authorization="X-Matrix origin=x"))
    assert_unauthorized(send_transaction(b, key, txn, destination=c.server_name))
    assert_unauthorized(send_transaction(b, impostor, txn))
    assert_unauthorized(send_transaction(b, unknown_key, txn))
    assert_unauthorized(send_transaction(b, key, txn, signed_body={"pdus": ["other"]}))
    assert_unauthorized(send_transaction(b, key, txn,
                                         signed_path=f"/_matrix/federation/v1/send/{txn}x"))
    # An origin that cannot be reached for its keys.
    nowhere = generate_server_key(f"{next_address()}:1", "k")
    assert_unauthorized(send_transaction(b, nowhere, txn))
    # None of that was taken for a transaction: the right one is still new.
    assert send_transaction(b, key, txn) == (200, {"pdus": {}})


def test_rotated_keys_are_published_as_old_verify_keys(
        make_fed_servers: Callable[..., list[FederatedServer]]) -> None:
    a, b = make_fed_servers(2)
    old_key = signing_key(b)
    assert send_transaction(a, old_key, "before")[0] == 200  # A now holds B's key
    b.stop()
    rotated = subprocess.run(
        [sys.executable, "-m", "homeserver", "rotate-signing-key",
         "--config", str(b.config_path)], cwd=ROOT, capture_output=True, text=True, check=True)
    new_key = signing_key(b)
    assert rotated.stdout.strip() == new_key.key_id != old_key.key_id
    b.start()
    status, document = b.federation_get("/_matrix/key/v2/server")
    assert status == 200
    check_key_document(document, b)
    old = document["old_verify_keys"][old_key.key_id]
    assert old["key"] == old_key.verify_key_base64
    assert old["expired_ts"] <= time.time() * 1000
    verify_key_from_base64(old_key.key_id, old["key"])
    # A learns the new key when B first signs with it; the old one no longer
    # authenticates requests (it expired), though it still verifies old events.
    assert send_transaction(a, new_key, "after") == (200, {"pdus": {}})
    assert_unauthorized(send_transaction(a, old_key, "after-with-old-key"))
    status, answer = a.federation_get(f"/_matrix/key/v2/query/{b.server_name}")
    assert any(old_key.key_id in d["old_verify_keys"] for d in answer["server_keys"])


# -- generate-config certificates, with verification off ----------------------

class SelfSignedServer(HomeserverProcess):
    """A server with generate-config's self-signed certificate that does not
    verify other servers' certificates (`--federation-insecure`)."""

    def __init__(self) -> None:
        ip = next_address()
        held = reserve_port(ip)
        self.federation_port = int(held.getsockname()[1])
        try:
            super().__init__(server_name=f"{ip}:{self.federation_port}", host=ip, extra_args=[
                "--federation-listen", f"{ip}:{self.federation_port}", "--federation-insecure"])
        finally:
            held.close()

    def start(self, timeout: float = 30) -> SelfSignedServer:
        super().start(timeout)
        context = ssl.create_default_context(cafile=str(self.data_dir / "federation.crt"))
        deadline = time.monotonic() + timeout
        while True:
            try:
                tls_handshake(self.host, self.federation_port, context, timeout=2)
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def federation_get(self, path: str) -> tuple[int, Any]:
        # Its own certificate is the trust anchor: it must carry the IP SAN.
        context = ssl.create_default_context(cafile=str(self.data_dir / "federation.crt"))
        return http_json("GET", f"https://{self.host}:{self.federation_port}{path}",
                         context=context)


@pytest.fixture
def self_signed_pair() -> Iterator[list[SelfSignedServer]]:
    servers = [SelfSignedServer(), SelfSignedServer()]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.cleanup()


def test_insecure_servers_with_generated_certificates_federate(
        self_signed_pair: list[SelfSignedServer], fed_servers: list[FederatedServer]) -> None:
    a, b = self_signed_pair
    status, answer = a.federation_get(f"/_matrix/key/v2/query/{b.server_name}")
    assert status == 200, answer
    [document] = answer["server_keys"]
    check_key_document(document, b)
    # A server that verifies certificates (against the test CA only) refuses
    # the self-signed one, so it gets no keys.
    status, answer = fed_servers[0].federation_get(f"/_matrix/key/v2/query/{b.server_name}")
    assert (status, answer) == (200, {"server_keys": []})


@pytest.mark.parametrize("name, ips, dns_names", [
    ("127.0.0.2:8448", ["127.0.0.2"], []),
    ("[::1]:8448", ["::1"], []),
    ("example.test:8448", [], ["example.test"]),
    ("example.test", [], ["example.test"]),
])
def test_generated_certificates_name_the_host_without_the_port(
        tmp_path: Path, name: str, ips: list[str], dns_names: list[str]) -> None:
    from cryptography import x509

    subprocess.run([sys.executable, "-m", "homeserver", "generate-config",
                    "--server-name", name, "--data-dir", str(tmp_path)],
                   cwd=ROOT, check=True, capture_output=True)
    cert = x509.load_pem_x509_certificate((tmp_path / "federation.crt").read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ips
    assert sans.get_values_for_type(x509.DNSName) == dns_names
