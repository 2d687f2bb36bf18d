"""What one m.room.message costs on the send path, per stage, in process.

The stages a `PUT /send` goes through on the main thread besides HTTP and
auth: the body parse (`decode_json_object`), the handler's content check
(size and JSON Schema, `check_event_content`), building the PDU the way the
room writer does (`build_event`: hash, sign, format check, event ID) and its
storage JSON (`event_row`). Microseconds per event, median of 7 runs.
Run: `python -m bench.event_build [--events N]`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from signedjson.key import decode_signing_key_base64

from federation.protocol.hashing import encode_base64
from federation.protocol.pdu_format import build_event
from federation.protocol.room_versions import ROOM_V10
from federation.protocol.signing import ServerKey
from homeserver.handlers.room_events import check_event_content
from homeserver.rest.http import decode_json_object
from homeserver.storage.event_rows import event_row

ROOM_ID = "!bench:guildhall.test"
SENDER = "@sender17:guildhall.test"
PREV = ["$" + "A" * 43]
AUTH = ["$" + "B" * 43, "$" + "C" * 43, "$" + "D" * 43]
KEY = ServerKey("guildhall.test",
                decode_signing_key_base64("ed25519", "a_key", encode_base64(bytes(range(32)))))
REPEATS = 7


def _bodies(count: int) -> list[bytes]:
    """What bench/cs_load's senders PUT: an m.text with a short line of text."""
    return [json.dumps({"msgtype": "m.text", "body": f"message {i} from sender 17"}).encode()
            for i in range(count)]


def _build(content: dict[str, Any], depth: int) -> Any:
    # As RoomWriter._build: the room's latest extremity, its auth events.
    return build_event(ROOM_V10, KEY, event_type="m.room.message", sender=SENDER,
                       content=content, room_id=ROOM_ID, prev_events=PREV, auth_events=AUTH,
                       depth=depth, origin_server_ts=1_700_000_000_000 + depth)


def _storage_row(event: Any) -> Any:
    req = SimpleNamespace(event=event, stream_ordering=1, outlier=False, soft_failed=False,
                          txn=None, txn_id=None)
    return event_row(req)  # type: ignore[arg-type]


def _time_per_item(stage: Callable[[Any], Any], items: list[Any]) -> float:
    """Median over REPEATS runs of the microseconds `stage` takes per item."""
    runs = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        for item in items:
            stage(item)
        runs.append((time.perf_counter() - start) / len(items) * 1e6)
    return statistics.median(runs)


def measure(count: int) -> dict[str, float]:
    bodies = _bodies(count)
    contents = [decode_json_object(raw) for raw in bodies]
    events = [_build(content, i + 2) for i, content in enumerate(contents)]
    results = {
        "parse body (decode_json_object)": _time_per_item(decode_json_object, bodies),
        "check content (size + schema)": _time_per_item(
            lambda c: check_event_content("m.room.message", c), contents),
        "build_event (hash, sign, check, ID)": _time_per_item(
            lambda ic: _build(ic[1], ic[0] + 2), list(enumerate(contents))),
        "storage JSON (event_row)": _time_per_item(_storage_row, events),
    }
    results["total"] = sum(results.values())
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    args = parser.parse_args()
    for stage, micros in measure(args.events).items():
        print(f"{stage:40s} {micros:8.1f} us/event")


if __name__ == "__main__":
    main()
