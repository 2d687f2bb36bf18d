"""The federation test beds work: the test CA, our servers' TLS listeners, Synapse."""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
import threading
from collections.abc import Callable, Iterator

import nio
import pytest

from tests.federation.accounts import quote
from tests.federation.certs import TestCA
from tests.federation.cluster import FederatedServer, tls_handshake
from tests.federation.loopback import next_address
from tests.federation.synapse import SynapsePeer
from tests.federation.waiting import message_with_body, wait_for_timeline_event
from tests.harness import http_json


# -- the test CA, against a plain Python TLS server ------------------------------
@pytest.fixture
def tls_server(test_ca: TestCA) -> Iterator[tuple[str, int]]:
    """A TLS server on a loopback address presenting a leaf from the test CA;
    it completes handshakes until the test ends."""
    ip = next_address()
    leaf = test_ca.issue(ips=[ip], dns_names=["localhost"])
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(leaf.cert_path, leaf.key_path)
    listener = socket.create_server((ip, 0))
    listener.settimeout(0.2)
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(5)
            try:
                with context.wrap_socket(conn, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                conn.close()  # the client refused our certificate

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield ip, listener.getsockname()[1]
    finally:
        done.set()
        thread.join(5)
        listener.close()


def test_ca_leaf_verifies_for_its_ip_and_only_with_the_ca(
        test_ca: TestCA, tls_server: tuple[str, int]) -> None:
    ip, port = tls_server
    certificate = tls_handshake(ip, port, test_ca.client_context())
    assert ("IP Address", ip) in certificate["subjectAltName"]
    assert ("DNS", "localhost") in certificate["subjectAltName"]
    # The system's trust store does not know the test CA.
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_handshake(ip, port, ssl.create_default_context())
    # Nor is the certificate valid for another address.
    with socket.create_connection((ip, port), timeout=5) as raw, \
            pytest.raises(ssl.SSLCertVerificationError, match="IP address mismatch"):
        test_ca.client_context().wrap_socket(raw, server_hostname="127.0.0.1")


# -- Synapse from PyPI ------------------------------------------------------------
def test_synapse_registers_creates_a_v12_room_and_sends(synapse: SynapsePeer,
                                                         unique: str) -> None:
    async def scenario() -> None:
        client = nio.AsyncClient(synapse.base_url, unique)
        try:
            registered = await client.register(unique, "correct horse")
            assert isinstance(registered, nio.RegisterResponse), registered
            assert client.user_id == synapse.user_id(unique)
            room = await client.room_create(name="smoke")
            assert isinstance(room, nio.RoomCreateResponse), room
            assert ":" not in room.room_id  # v12 room IDs carry no server name
            create = await client.room_get_state_event(room.room_id, "m.room.create")
            assert isinstance(create, nio.RoomGetStateEventResponse), create
            assert create.content["room_version"] == "12"
            sent = await client.room_send(room.room_id, "m.room.message",
                                          {"msgtype": "m.text", "body": "hello"})
            assert isinstance(sent, nio.RoomSendResponse), sent
            page = await client.room_messages(room.room_id, start="", limit=5)
            assert isinstance(page, nio.RoomMessagesResponse), page
            assert page.chunk[0].event_id == sent.event_id  # newest first
        finally:
            await client.close()

    asyncio.run(scenario())


def test_synapse_shared_secret_registration(synapse: SynapsePeer, unique: str) -> None:
    account = synapse.register(unique, admin=True)
    assert account.user_id == synapse.user_id(unique)
    status, whoami = http_json("GET", f"{synapse.base_url}/_matrix/client/v3/account/whoami",
                               token=account.access_token)
    assert status == 200 and whoami["user_id"] == account.user_id, whoami


def test_synapse_federation_listener_uses_the_test_ca(synapse: SynapsePeer) -> None:
    status, version = synapse.federation_get("/_matrix/federation/v1/version")
    assert status == 200 and version["server"]["name"] == "Synapse", version
    status, keys = synapse.federation_get("/_matrix/key/v2/server")
    assert status == 200 and keys["server_name"] == synapse.server_name, keys


# -- our servers --------------------------------------------------------------------
def test_our_servers_answer_federation_version_over_verified_tls(
        fed_servers: list[FederatedServer]) -> None:
    first, second = fed_servers[:2]
    assert first.ip != second.ip
    for server in (first, second):
        certificate = tls_handshake(server.ip, server.federation_port,
                                    server.ca.client_context())
        assert ("IP Address", server.ip) in certificate["subjectAltName"]
        status, version = server.federation_get("/_matrix/federation/v1/version")
        assert status == 200 and version["server"]["name"], version
        status, keys = server.federation_get("/_matrix/key/v2/server")
        assert status == 200 and keys["server_name"] == server.server_name, keys


def test_synapse_fetches_our_keys_through_its_notary_endpoint(
        synapse: SynapsePeer, fed_servers: list[FederatedServer]) -> None:
    """Synapse reaches our federation listener over TLS it verifies against the CA."""
    ours = fed_servers[0]
    status, published = ours.federation_get("/_matrix/key/v2/server")
    assert status == 200, published
    # Asking for a key ID it lacks makes Synapse fetch it from us directly.
    query = {key_id: {"minimum_valid_until_ts": 0} for key_id in published["verify_keys"]}
    status, answer = synapse.federation_post("/_matrix/key/v2/query",
                                             {"server_keys": {ours.server_name: query}})
    assert status == 200, answer
    synapse.wait_for_log(rf"\[{re.escape(ours.server_name)}\] Completed request: 200 .*"
                         r"GET matrix-federation://\S+/_matrix/key/v2/server", timeout=5)
    ours.wait_for_log(r'"GET /_matrix/key/v2/server HTTP/1.1" 200 .*"Synapse/', timeout=5)
    fetched = [keys for keys in answer["server_keys"] if keys["server_name"] == ours.server_name]
    assert fetched, answer
    assert fetched[0]["verify_keys"] == published["verify_keys"]
    # Signed by us, and countersigned by Synapse as the notary.
    assert set(fetched[0]["signatures"]) == {ours.server_name, synapse.server_name}


def test_our_server_restarts_with_the_same_name_key_and_data(
        make_fed_servers: Callable[..., list[FederatedServer]], unique: str) -> None:
    [server] = make_fed_servers(1)
    account = server.register(unique)
    _, before = server.federation_get("/_matrix/key/v2/server")
    for crash in (True, False):  # kill -9, then a clean stop
        server.restart(crash=crash)
        _, after = server.federation_get("/_matrix/key/v2/server")
        assert after["server_name"] == server.server_name
        assert after["verify_keys"] == before["verify_keys"]
        status, whoami = account.request("GET", "/account/whoami")
        assert status == 200 and whoami["user_id"] == server.user_id(unique), whoami
    assert server.stop() == 0, server.log()


def test_helpers_join_with_via_and_wait_for_a_message(synapse: SynapsePeer,
                                                      unique: str) -> None:
    owner = synapse.register(f"{unique}o")
    guest = synapse.register_open(f"{unique}g")
    status, room = owner.request("POST", "/createRoom", {"preset": "public_chat"})
    assert status == 200, room
    status, joined = guest.join(room["room_id"], via=[synapse.server_name])
    assert status == 200 and joined["room_id"] == room["room_id"], joined

    async def scenario() -> None:
        client = guest.client()
        try:
            await client.sync(timeout=0)
            status, _ = owner.request(
                "PUT", f"/rooms/{quote(room['room_id'])}/send/m.room.message/{unique}",
                {"msgtype": "m.text", "body": unique})
            assert status == 200
            event = await wait_for_timeline_event(client, room["room_id"],
                                                  message_with_body(unique), timeout=10)
            assert event["sender"] == owner.user_id
        finally:
            await client.close()

    asyncio.run(scenario())


def test_a_synapse_of_its_own_with_a_pinned_room_version(
        make_synapse: Callable[..., SynapsePeer], unique: str) -> None:
    peer = make_synapse(room_version="10")
    owner = peer.register(unique)
    status, room = owner.request("POST", "/createRoom", {})
    assert status == 200, room
    assert room["room_id"].endswith(f":{peer.server_name}")  # v10 IDs name their server
    status, create = owner.request("GET", f"/rooms/{quote(room['room_id'])}/state/m.room.create")
    assert status == 200 and create["room_version"] == "10", create
