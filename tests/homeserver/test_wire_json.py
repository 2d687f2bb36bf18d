"""Response and frame JSON: valid UTF-8 JSON for whatever a body holds."""

from __future__ import annotations

import json

from homeserver.wire_json import encode


def test_compact_utf8_json() -> None:
    assert encode({"body": "héllo ☃", "n": [1, 2.5, None, True]}) == \
        '{"body":"héllo ☃","n":[1,2.5,null,true]}'.encode()


def test_a_lone_surrogate_is_escaped_not_an_error() -> None:
    text = encode({"body": "bad \udc80 half"})
    assert json.loads(text) == {"body": "bad \udc80 half"}
    text.decode("utf-8")  # valid UTF-8 on the wire


def test_integers_beyond_64_bits_are_written_out() -> None:
    assert json.loads(encode({"n": 2**70})) == {"n": 2**70}


def test_non_string_keys_become_strings() -> None:
    assert json.loads(encode({1: "one"})) == {"1": "one"}
