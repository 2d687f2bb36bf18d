"""What request-schema validation adds to a body's parsing, in process.

For the hot write paths, `PUT /rooms/{roomId}/send/...` (client) and
`PUT /_matrix/federation/v1/send/{txnId}` (a full transaction of 50 PDUs and
10 EDUs): the time `parse_json_body` takes with the route's request schema and
without it (JSON parse and canonical-JSON checks only), median of 7 runs.
Run: `python -m bench.request_validation`.
"""

from __future__ import annotations

import io
import json
import statistics
import time
from types import SimpleNamespace
from typing import Any

import schemas
from homeserver.rest.http import parse_json_body

EVENT_ID = "$" + "A" * 43
PDU = {"type": "m.room.message", "sender": "@alice:example.org", "room_id": "!r:example.org",
       "origin_server_ts": 1_700_000_000_000, "depth": 1234,
       "content": {"msgtype": "m.text", "body": "hello " * 40},
       "prev_events": [EVENT_ID], "auth_events": [EVENT_ID] * 3,
       "hashes": {"sha256": "B" * 43},
       "signatures": {"example.org": {"ed25519:a_key": "C" * 86}}, "unsigned": {"age": 5}}
BODIES: dict[str, tuple[str, dict[str, Any]]] = {
    "client PUT /send (m.text)": ("client/sendMessage", {"msgtype": "m.text", "body": "hello"}),
    "federation PUT /send (50 PDUs, 10 EDUs)": ("federation/sendTransaction", {
        "origin": "example.org", "origin_server_ts": 1_700_000_000_000, "pdus": [PDU] * 50,
        "edus": [{"edu_type": "m.typing", "content": {"room_id": "!r:example.org",
                                                      "user_id": "@a:example.org",
                                                      "typing": True}}] * 10}),
}


def _request(raw: bytes, schema: str | None) -> Any:
    """Just what parse_json_body reads of a twisted Request."""
    return SimpleNamespace(content=io.BytesIO(raw), body_too_large=False, body_schema=schema)


def _time_us(call: Any, rounds: int) -> float:
    start = time.perf_counter()
    for _ in range(rounds):
        call()
    return (time.perf_counter() - start) / rounds * 1e6


def measure(schema: str, body: dict[str, Any], repeats: int = 7) -> dict[str, float]:
    """Median µs per call: parsing alone, parsing with the schema, the schema
    alone. Runs alternate, so a busy machine slows both alike."""
    raw = json.dumps(body).encode()
    schemas.validate_request(schema, body)  # compiled once, before timing
    rounds = 2000 if len(raw) < 10_000 else 100
    runs: dict[str, list[float]] = {"plain": [], "checked": [], "schema": []}
    for _ in range(repeats):
        runs["plain"].append(_time_us(lambda: parse_json_body(_request(raw, None)), rounds))
        runs["checked"].append(_time_us(lambda: parse_json_body(_request(raw, schema)), rounds))
        runs["schema"].append(_time_us(lambda: schemas.validate_request(schema, body), rounds))
    return {name: statistics.median(values) for name, values in runs.items()}


def main() -> None:
    print(f"{'body':42} {'parse only':>12} {'parse+schema':>13} {'schema alone':>13}")
    for what, (schema, body) in BODIES.items():
        times = measure(schema, body)
        print(f"{what:42} {times['plain']:10.1f}us {times['checked']:11.1f}us "
              f"{times['schema']:11.1f}us ({times['schema'] / times['plain']:.0%} of parsing)")


if __name__ == "__main__":
    main()
