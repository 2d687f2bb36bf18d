"""A hand-driven remote server for hostile-input tests.

It is a real federation peer as far as our server can tell: its signing key is
served over HTTPS (certificate from the test CA) at /_matrix/key/v2/server and
its requests are X-Matrix signed. The test decides every PDU it sends, so it
can forge, mis-sign or tamper with them. Everything else it is sent gets 200.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote, unquote

from signedjson.sign import sign_json

from federation.protocol.events import Event
from federation.protocol.room_versions import KNOWN_ROOM_VERSIONS
from federation.protocol.signing import generate_server_key, hash_and_sign_event
from federation.protocol.request_auth import sign_request
from tests.federation.certs import TestCA
from tests.federation.loopback import next_address
from tests.harness import http_json


class RoguePeer:
    def __init__(self, ca: TestCA) -> None:
        self.ip = next_address()
        self._httpd = ThreadingHTTPServer((self.ip, 0), self._handler())
        self.port = self._httpd.server_address[1]
        self.server_name = f"{self.ip}:{self.port}"
        self.key = generate_server_key(self.server_name, "rogue")
        cert = ca.issue(ips=[self.ip])
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert.cert_path, cert.key_path)
        self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
        self._client_context = ca.client_context()
        self.received: list[tuple[str, str, Any]] = []
        # What the rogue serves when asked to fill gaps: PDUs by event ID,
        # the /get_missing_events answer and the /state_ids answer.
        self.held: dict[str, dict[str, Any]] = {}
        self.missing_events_answer: list[dict[str, Any]] = []
        self.state_ids_answer: dict[str, Any] = {"pdu_ids": [], "auth_chain_ids": []}
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def user_id(self, localpart: str) -> str:
        return f"@{localpart}:{self.server_name}"

    def _key_document(self) -> dict[str, Any]:
        doc = {"server_name": self.server_name,
               "valid_until_ts": int(time.time() * 1000) + 86_400_000,
               "verify_keys": {self.key.key_id: {"key": self.key.verify_key_base64}},
               "old_verify_keys": {}}
        return sign_json(doc, self.server_name, self.key.signing_key)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                peer.received.append(("GET", self.path, b""))
                if self.path.startswith("/_matrix/key/v2/server"):
                    self._answer(peer._key_document())
                elif self.path.startswith("/_matrix/federation/v1/event/"):
                    wanted = unquote(self.path.split("/")[-1].split("?")[0])
                    self._answer({"origin": peer.server_name, "origin_server_ts": 0,
                                  "pdus": [peer.held[wanted]] if wanted in peer.held else []})
                elif self.path.startswith("/_matrix/federation/v1/state_ids/"):
                    self._answer(peer.state_ids_answer)
                else:
                    self._answer({})

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                peer.received.append(("POST", self.path, body))
                if "/get_missing_events/" in self.path:
                    self._answer({"events": peer.missing_events_answer})
                else:
                    self._answer({})

            def do_PUT(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                peer.received.append(("PUT", self.path, body))
                self._answer({"pdus": {}} if "/send/" in self.path else {})

        return Handler

    # Requests to our server ------------------------------------------------------

    def request(self, destination: str, method: str, path: str, body: Any = None,
                raw: bytes | None = None) -> tuple[int, Any]:
        header = sign_request(self.key, method, path, destination, body)
        ip_port = destination
        return http_json(method, f"https://{ip_port}{path}", body, raw=raw,
                         headers={"Authorization": header}, context=self._client_context)

    def join(self, destination: str, room_id: str, localpart: str) -> dict[str, Any]:
        """make_join + send_join for one of the rogue's users; returns the join PDU."""
        user = self.user_id(localpart)
        status, made = self.request(destination, "GET",
                                    f"/_matrix/federation/v1/make_join/{quote(room_id, safe='')}"
                                    f"/{quote(user, safe='')}?ver=10&ver=11&ver=12")
        assert status == 200, made
        version = KNOWN_ROOM_VERSIONS[made["room_version"]]
        template = made["event"]
        pdu = {k: template[k] for k in ("type", "room_id", "sender", "state_key", "content",
                                        "prev_events", "auth_events", "depth")}
        pdu["origin_server_ts"] = int(time.time() * 1000)
        signed = hash_and_sign_event(pdu, self.key, version)
        event_id = Event(signed, version).event_id
        status, answer = self.request(
            destination, "PUT",
            f"/_matrix/federation/v2/send_join/{quote(room_id, safe='')}/"
            f"{quote(event_id, safe='')}",
            signed)
        assert status == 200, answer
        return signed

    def event(self, room_version: str, **fields: Any) -> dict[str, Any]:
        """A PDU signed by the rogue (fields as given; hashes and signature added)."""
        pdu = {"origin_server_ts": int(time.time() * 1000), "content": {}, **fields}
        return hash_and_sign_event(pdu, self.key, KNOWN_ROOM_VERSIONS[room_version])

    def send(self, destination: str, pdus: list[Any], txn_id: str | None = None,
             edus: list[Any] | None = None) -> tuple[int, Any]:
        txn_id = txn_id or str(time.monotonic_ns())
        body: dict[str, Any] = {"origin": self.server_name,
                                "origin_server_ts": int(time.time() * 1000), "pdus": pdus}
        if edus is not None:
            body["edus"] = edus
        return self.request(destination, "PUT", f"/_matrix/federation/v1/send/{txn_id}", body)


def event_id(pdu: dict[str, Any], room_version: str) -> str:
    return Event(pdu, KNOWN_ROOM_VERSIONS[room_version]).event_id
