"""Canonical JSON (appendices, "Canonical JSON"), plus the value rules of room v6+."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.protocol import canonical_json
from federation.protocol.canonical_json import MAX_INT, MIN_INT, check_canonical, encode, parse
from federation.protocol.errors import Codes, InvalidEventError

# The spec's examples: (input JSON text, expected canonical JSON text).
SPEC_EXAMPLES = [
    ("{}", "{}"),
    ('{\n    "one": 1,\n    "two": "Two"\n}', '{"one":1,"two":"Two"}'),
    ('{\n    "b": "2",\n    "a": "1"\n}', '{"a":"1","b":"2"}'),
    ('{"b":"2","a":"1"}', '{"a":"1","b":"2"}'),
    (
        """{
    "auth": {
        "success": true,
        "mxid": "@john.doe:example.com",
        "profile": {
            "display_name": "John Doe",
            "three_pids": [
                {
                    "medium": "email",
                    "address": "john.doe@example.org"
                },
                {
                    "medium": "msisdn",
                    "address": "123456789"
                }
            ]
        }
    }
}""",
        '{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe",'
        '"three_pids":[{"address":"john.doe@example.org","medium":"email"},'
        '{"address":"123456789","medium":"msisdn"}]},"success":true}}',
    ),
    ('{\n    "a": "日本語"\n}', '{"a":"日本語"}'),
    ('{\n    "本": 2,\n    "日": 1\n}', '{"日":1,"本":2}'),
    ('{\n    "a": "\\u65E5"\n}', '{"a":"日"}'),
    ('{\n    "a": null\n}', '{"a":null}'),
]


@pytest.mark.parametrize(("source", "expected"), SPEC_EXAMPLES)
def test_spec_examples(source: str, expected: str) -> None:
    assert encode(parse(source)) == expected.encode("utf-8")
    assert encode(parse(source.encode("utf-8"))) == expected.encode("utf-8")


def test_spec_example_negative_zero_and_exponent() -> None:
    """The spec's `{"a": -0, "b": 1e10}` example.

    `-0` parses to the integer 0 and encodes as `0`. `1e10` parses as a float,
    and floats are refused outright (the appendix: "Float values are not
    permitted by this encoding"); the integer it denotes encodes as the spec shows.
    """
    parsed = parse('{\n    "a": -0,\n    "b": 1e10\n}')
    assert parsed["a"] == 0 and isinstance(parsed["a"], int)
    with pytest.raises(InvalidEventError) as exc:
        encode(parsed)
    assert exc.value.errcode == Codes.BAD_JSON
    assert encode({"a": -0, "b": 10**10}) == b'{"a":0,"b":10000000000}'


def test_no_whitespace_and_nested_sorting() -> None:
    value = {"z": [3, {"y": 1, "x": [True, False, None]}], "a": {"c": {}, "b": []}}
    assert encode(value) == b'{"a":{"b":[],"c":{}},"z":[3,{"x":[true,false,null],"y":1}]}'


def test_arrays_keep_their_order() -> None:
    assert encode([3, 1, 2, "b", "a"]) == b'[3,1,2,"b","a"]'
    assert encode((1, 2)) == b"[1,2]"


def test_keys_sorted_by_code_point() -> None:
    value = {"b": 1, "B": 2, "a": 3, "_": 4, "\u00e9": 5, "\uffff": 6, "\U00010000": 7, "": 8,
             "aa": 9, "a\u0000": 10}
    text = encode(value).decode("utf-8")
    keys = list(json.loads(text, object_pairs_hook=lambda pairs: [k for k, _ in pairs]))
    assert keys == sorted(value)
    # Code-point order, not UTF-16 order: U+FFFF sorts before U+10000.
    assert keys.index("\uffff") < keys.index("\U00010000")
    assert keys[:5] == ["", "B", "_", "a", "a\u0000"]


def test_non_ascii_is_raw_utf8() -> None:
    assert encode({"k": "\u00e9\U0001f600\u2028"}) == '{"k":"\u00e9\U0001f600\u2028"}'.encode()
    assert encode({"\u65e5": "x"}) == '{"\u65e5":"x"}'.encode()


@pytest.mark.parametrize(
    ("char", "escaped"),
    [
        ("\b", "\\b"),
        ("\t", "\\t"),
        ("\n", "\\n"),
        ("\f", "\\f"),
        ("\r", "\\r"),
        ('"', '\\"'),
        ("\\", "\\\\"),
        ("\x00", "\\u0000"),
        ("\x07", "\\u0007"),
        ("\x0b", "\\u000b"),
        ("\x0e", "\\u000e"),
        ("\x0f", "\\u000f"),
        ("\x10", "\\u0010"),
        ("\x1a", "\\u001a"),
        ("\x1f", "\\u001f"),
        # Not escaped: '/', DEL and everything from U+0020 up.
        ("/", "/"),
        (" ", " "),
        ("\x7f", "\x7f"),
        ("'", "'"),
    ],
)
def test_string_escapes(char: str, escaped: str) -> None:
    assert encode(char) == f'"{escaped}"'.encode("utf-8")
    assert encode({char: 1}) == f'{{"{escaped}":1}}'.encode("utf-8")


def test_every_control_character_uses_the_shortest_escape() -> None:
    short = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
    for code in range(0x20):
        char = chr(code)
        expected = short.get(char, f"\\u{code:04x}")  # lower-case hex, as the grammar says
        assert encode(char) == f'"{expected}"'.encode("ascii")


@pytest.mark.parametrize("value", [True, False, None, 0, -1, 1, "x", [], {}])
def test_scalars(value: Any) -> None:
    assert encode(value) == json.dumps(value, separators=(",", ":")).encode()


# Integer range -------------------------------------------------------------------------


@pytest.mark.parametrize("value", [MAX_INT, MIN_INT, 0, -1, 2**53 - 1, -(2**53) + 1])
def test_integers_in_range(value: int) -> None:
    assert encode({"n": value}) == f'{{"n":{value}}}'.encode()
    assert encode([value]) == f"[{value}]".encode()


def test_range_bounds() -> None:
    assert MAX_INT == 2**53 - 1
    assert MIN_INT == -(2**53) + 1


@pytest.mark.parametrize("value", [2**53, -(2**53), 2**64, -(2**63), 10**30])
@pytest.mark.parametrize(
    "wrap", [lambda v: v, lambda v: {"n": v}, lambda v: [v], lambda v: {"a": [{"b": v}]}]
)
def test_integers_out_of_range(value: int, wrap: Any) -> None:
    with pytest.raises(InvalidEventError) as exc:
        encode(wrap(value))
    assert exc.value.errcode == Codes.BAD_JSON
    assert exc.value.status == 400
    with pytest.raises(InvalidEventError):
        check_canonical(wrap(value))


def test_out_of_range_error_names_the_path() -> None:
    with pytest.raises(InvalidEventError) as exc:
        encode({"content": {"list": [1, 2**60]}})
    assert "content" in exc.value.message and "list" in exc.value.message


def test_parsed_big_integer_is_rejected_on_encode() -> None:
    parsed = parse('{"n": 9007199254740992}')
    assert parsed == {"n": 2**53}
    with pytest.raises(InvalidEventError):
        encode(parsed)
    assert encode(parse('{"n": 9007199254740991}')) == b'{"n":9007199254740991}'


# Floats and other non-JSON values ---------------------------------------------------------


@pytest.mark.parametrize("value", [1.0, 0.5, -0.0, 1e10, float("inf"), float("-inf"),
                                   float("nan")])
@pytest.mark.parametrize("wrap", [lambda v: v, lambda v: {"n": v}, lambda v: [1, v]])
def test_floats_rejected(value: float, wrap: Any) -> None:
    with pytest.raises(InvalidEventError) as exc:
        encode(wrap(value))
    assert exc.value.errcode == Codes.BAD_JSON


@pytest.mark.parametrize(
    "value",
    [{1: "a"}, {None: 1}, {(1, 2): 1}, {1, 2}, b"bytes", object(), {"a": {"b": object()}}],
)
def test_unsupported_values_rejected(value: Any) -> None:
    with pytest.raises(InvalidEventError) as exc:
        encode(value)
    assert exc.value.errcode == Codes.BAD_JSON


@pytest.mark.parametrize("value", ["\ud800", {"a": "x\udfffy"}, {"\ud83d": 1}, ["\udc00"]])
def test_lone_surrogates_rejected(value: Any) -> None:
    with pytest.raises(InvalidEventError) as exc:
        encode(value)
    assert exc.value.errcode == Codes.BAD_JSON


def test_booleans_are_not_integers() -> None:
    assert encode({"t": True, "f": False}) == b'{"f":false,"t":true}'


def test_encode_unchecked_matches_encode_for_valid_values() -> None:
    value = {"b": [1, "x", None], "a": {"\u00e9": True}}
    assert canonical_json.encode_unchecked(value) == encode(value)


# parse ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "{",
        "}",
        "{'a': 1}",
        '{"a": 1,}',
        '{"a" 1}',
        "[1, 2",
        "undefined",
        "nul",
        "tru",
        '"unterminated',
        "NaN",
        "Infinity",
        "-Infinity",
        '{"a": NaN}',
        '{"a": [Infinity]}',
        '{"a": -Infinity}',
        b"\xff\xfe\xfa",
        b'{"a": "\xff"}',
        '{"a": 1} trailing',
        "[" * 100000 + "]" * 100000,
    ],
)
def test_parse_rejects_non_json(raw: str | bytes) -> None:
    with pytest.raises(InvalidEventError) as exc:
        parse(raw)
    assert exc.value.errcode == Codes.NOT_JSON
    assert exc.value.status == 400


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("{}", {}),
        ("[]", []),
        ("null", None),
        ("1", 1),
        ('"x"', "x"),
        (b'{"a": [1, true, null]}', {"a": [1, True, None]}),
        ('{"a": "\\ud83d\\ude00"}', {"a": "\U0001f600"}),
        (' \n{"a":1}\n ', {"a": 1}),
    ],
)
def test_parse_accepts_json(raw: str | bytes, value: Any) -> None:
    assert parse(raw) == value


# check_canonical first walks without building paths; only a value it doubts
# (refused, or of a subclass) is walked again, naming the path in the message.
class _Text(str):
    pass


ANY_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(MIN_INT - 2, MAX_INT + 2) | st.floats()
    | st.text(max_size=6) | st.sampled_from(["\ud800", "caf\u00e9", _Text("sub"), b"bytes"]),
    lambda inner: st.lists(inner, max_size=3) | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=4) | st.integers(0, 2) | st.just("\udfff"), inner,
                      max_size=3),
    max_leaves=10)


def _problem(check: Any, value: Any) -> str | None:
    try:
        check(value)
    except InvalidEventError as exc:
        return exc.message
    return None


@settings(max_examples=500, deadline=None)
@given(value=ANY_VALUES)
def test_the_quick_walk_changes_no_verdict_or_message(value: Any) -> None:
    expected = _problem(canonical_json._raise_first_problem, value)
    assert _problem(check_canonical, value) == expected
    if canonical_json._is_canonical(value):
        assert expected is None
