"""Keys and X-Matrix with an unmodified Synapse: we fetch (and notarise)
Synapse's keys over verified TLS, and Synapse accepts requests we sign (it
fetches our keys to check them) and refuses forged ones."""

from __future__ import annotations

from urllib.parse import quote, urlencode

from signedjson.sign import verify_signed_json

from federation.protocol.request_auth import sign_request
from federation.protocol.signing import generate_server_key, verify_key_from_base64
from tests.federation.cluster import FederatedServer
from tests.federation.synapse import SynapsePeer
from tests.federation.test_keys_and_auth import signing_key
from tests.harness import http_json


def test_we_fetch_and_notarise_synapse_keys(fed_servers: list[FederatedServer],
                                            synapse: SynapsePeer) -> None:
    ours = fed_servers[0]
    status, published = synapse.federation_get("/_matrix/key/v2/server")
    assert status == 200
    status, answer = ours.federation_get(f"/_matrix/key/v2/query/{synapse.server_name}")
    assert status == 200, (answer, ours.log())
    [document] = answer["server_keys"]
    assert document["verify_keys"] == published["verify_keys"]
    for key_id, entry in published["verify_keys"].items():
        verify_signed_json(document, synapse.server_name,
                           verify_key_from_base64(key_id, entry["key"]))
    verify_signed_json(document, ours.server_name, signing_key(ours).verify_key)


def test_synapse_accepts_our_signed_requests_and_refuses_forged_ones(
        fed_servers: list[FederatedServer], synapse: SynapsePeer, unique: str) -> None:
    ours = fed_servers[1]
    sam = synapse.register(f"sam{unique}")
    path = "/_matrix/federation/v1/query/profile?" + urlencode(
        {"user_id": sam.user_id}, quote_via=quote)

    def ask(authorization: str) -> tuple[int, object]:
        return http_json("GET", f"{synapse.federation_url}{path}",
                         headers={"Authorization": authorization},
                         context=synapse.ca.client_context())

    key = signing_key(ours)
    status, profile = ask(sign_request(key, "GET", path, synapse.server_name))
    assert status == 200, (profile, synapse.log_tail())
    assert isinstance(profile, dict) and profile.get("displayname") == f"sam{unique}"
    forged = generate_server_key(ours.server_name, key.signing_key.version)
    status, refused = ask(sign_request(forged, "GET", path, synapse.server_name))
    assert status == 401, refused
