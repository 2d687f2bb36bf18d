"""JSON text we write: responses, stream frames and stored events.

orjson encodes a /sync body some ten times faster than the json module, and a
message to a room with 500 stream listeners encodes 500 of them. Not for
anything signed or hashed: canonical JSON lives in federation/protocol.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def encode(body: Any) -> bytes:
    """Compact UTF-8 JSON."""
    try:
        return orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)
    except (orjson.JSONEncodeError, TypeError):
        # What orjson refuses (lone surrogates, integers beyond 64 bits) the
        # json module escapes or writes out.
        return json.dumps(body, separators=(",", ":")).encode("ascii")
