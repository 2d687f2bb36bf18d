"""Identifier grammars (appendices, "Identifier Grammar")."""

from __future__ import annotations

import pytest

from federation.protocol.identifiers import (
    MAX_ID_BYTES,
    is_valid_event_id,
    is_valid_hash_id,
    is_valid_historical_localpart,
    is_valid_host,
    is_valid_namespaced_identifier,
    is_valid_room_alias,
    is_valid_room_id,
    is_valid_server_name,
    is_valid_strict_localpart,
    is_valid_user_id,
    server_of,
    split_server_name,
)

HASH = "Rqnc-F-dvnEYJTyHq_iKxU2bZ1CI92-kuZq3a5lr5Zg"  # the spec's v4 event ID example
assert len(HASH) == 43

# Server names ---------------------------------------------------------------------

VALID_SERVER_NAMES = [
    # The spec's examples.
    "matrix.org",
    "matrix.org:8888",
    "1.2.3.4",
    "1.2.3.4:1234",
    "[1234:5678::abcd]",
    "[1234:5678::abcd]:5678",
    # More.
    "localhost",
    "localhost:1",
    "localhost:65535",
    "MATRIX.ORG",
    "a",
    "xn--bcher-kva.example",
    "my-server.example.com",
    "0.0.0.0",
    "255.255.255.255",
    "[::1]",
    "[::1]:8448",
    "[::]",
    "[::ffff:1.2.3.4]",
    "[2001:DB8::1]",
    # dns-name = 1*255dns-char, dns-char = DIGIT / ALPHA / "-" / "." : the grammar
    # does not enforce label structure, so these are accepted as DNS names.
    "1.2.3.4.5",
    "1.2.3",
    "-leading-hyphen.example",
    "trailing.dot.",
    "a..b",
    "123",
    "a" * 255,
    "example.org:08448",  # port = 1*5DIGIT
]

INVALID_SERVER_NAMES = [
    "",
    ":8448",
    "example.org:",
    "example.org:0",
    "example.org:65536",
    "example.org:99999",
    "example.org:123456",
    "example.org:-1",
    "example.org:+80",
    "example.org:80a",
    "example.org: 80",
    "example.org:80:80",
    "exa mple.org",
    "exa_mple.org",
    "example.org/",
    "user@example.org",
    "ex\u00e4mple.org",  # non-ASCII: use punycode
    "example.org\n",
    "example.org:8448\n",
    "\nexample.org",
    # Bare or broken IPv6.
    "::1",
    "1234:5678::abcd",
    "[::1",
    "::1]",
    "[]",
    "[:]",
    "[::1]x",
    "[::1]:",
    "[::1]:0",
    "[::1]:65536",
    "[::g]",
    "[1:2:3:4:5:6:7:8:9]",
    "[fe80::1%eth0]",  # zone IDs are outside the spec's IPv6char set
    "[[::1]]",
    # A dotted quad is an IPv4 literal, whose four numbers must be 0-255 (spec prose).
    # The dns-name production alone would match these, but the implementation (like
    # the prose) treats an all-digit dotted quad as an IPv4 literal and rejects it.
    "256.1.1.1",
    "1.2.3.256",
    "999.999.999.999",
    "999.999.999.999:8448",
    "a" * 256,
]


@pytest.mark.parametrize("name", VALID_SERVER_NAMES)
def test_valid_server_names(name: str) -> None:
    assert is_valid_server_name(name)


@pytest.mark.parametrize("name", INVALID_SERVER_NAMES)
def test_invalid_server_names(name: str) -> None:
    assert not is_valid_server_name(name)


def test_server_name_length_counts_the_port() -> None:
    assert is_valid_server_name("a" * 249 + ":65535")
    assert not is_valid_server_name("a" * 250 + ":65535")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("matrix.org", ("matrix.org", None)),
        ("matrix.org:8888", ("matrix.org", 8888)),
        ("1.2.3.4", ("1.2.3.4", None)),
        ("1.2.3.4:1234", ("1.2.3.4", 1234)),
        ("[1234:5678::abcd]", ("[1234:5678::abcd]", None)),
        ("[1234:5678::abcd]:5678", ("[1234:5678::abcd]", 5678)),
        ("localhost:1", ("localhost", 1)),
        ("localhost:65535", ("localhost", 65535)),
        ("localhost:00080", ("localhost", 80)),
        ("[::1]:443", ("[::1]", 443)),
    ],
)
def test_split_server_name(name: str, expected: tuple[str, int | None]) -> None:
    assert split_server_name(name) == expected


@pytest.mark.parametrize(
    "name",
    ["example.org:", "example.org:0", "example.org:65536", "example.org:x", "example.org:1:2",
     "[::1", "[::1]x", "[::1]:", "[::1]:0", "[::1]::1", "example.org:123456", "example.org:-5",
     "example.org:8448\n"],
)
def test_split_server_name_rejects(name: str) -> None:
    with pytest.raises(ValueError):
        split_server_name(name)


@pytest.mark.parametrize(
    ("host", "valid"),
    [("[::1]", True), ("[::1", False), ("1.2.3.4", True), ("300.1.1.1", False),
     ("host-name", True), ("", False), ("host name", False), ("[1.2.3.4]", False)],
)
def test_is_valid_host(host: str, valid: bool) -> None:
    assert is_valid_host(host) is valid


# User IDs -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "user_id",
    [
        "@alice:example.org",
        "@a:b",
        "@0123456789abcdefghijklmnopqrstuvwxyz._=-/+:example.org",
        "@alice:example.org:8448",
        "@alice:1.2.3.4",
        "@alice:[::1]:8448",
    ],
)
def test_strict_user_ids(user_id: str) -> None:
    assert is_valid_user_id(user_id, strict=True)
    assert is_valid_user_id(user_id)


@pytest.mark.parametrize(
    "user_id",
    [
        "@Alice:example.org",  # upper case
        "@al ice:example.org",
        "@alice!:example.org",
        "@al*ce:example.org",
        "@\u00e9:example.org",
        "@\U0001f600:example.org",
        "@:example.org",  # empty localpart
        "@a\tb:example.org",
        "@\x7f:example.org",
        "@~:example.org",
        "@alice\n:example.org",  # control characters are historical, not forbidden
    ],
)
def test_historical_but_not_strict_user_ids(user_id: str) -> None:
    """Accepted in events (historical grammar) but not compliant with the strict one."""
    assert is_valid_user_id(user_id)
    assert not is_valid_user_id(user_id, strict=True)


@pytest.mark.parametrize(
    "user_id",
    [
        "alice:example.org",  # no sigil
        "#alice:example.org",
        "!alice:example.org",
        "$alice:example.org",
        "@alice",  # no server name
        "@alice:",
        "@alice:exa_mple.org",
        "@alice:example.org:0",
        "@alice:example.org:99999",
        "@a\x00b:example.org",  # NUL
        "@a\ud800b:example.org",  # lone surrogate
        "@alice:example.org\n",
        "",
        "@",
        None,
        42,
        ["@alice:example.org"],
    ],
)
def test_invalid_user_ids(user_id: object) -> None:
    assert not is_valid_user_id(user_id)
    assert not is_valid_user_id(user_id, strict=True)


def test_user_id_colon_splits_at_first_colon() -> None:
    # Localparts never contain ':' -- everything after the first one is the server name.
    assert server_of("@a:b:8448") == "b:8448"
    assert not is_valid_user_id("@a:b:c")


def test_user_id_255_byte_limit() -> None:
    domain = ":example.org"
    fits = "@" + "a" * (MAX_ID_BYTES - 1 - len(domain)) + domain
    assert len(fits.encode()) == 255
    assert is_valid_user_id(fits, strict=True)
    too_long = "@" + "a" * (MAX_ID_BYTES - len(domain)) + domain
    assert len(too_long.encode()) == 256
    assert not is_valid_user_id(too_long, strict=True)
    assert not is_valid_user_id(too_long)


def test_user_id_limit_is_in_bytes_not_characters() -> None:
    domain = ":example.org"
    # 'é' is two bytes in UTF-8.
    localpart = "\u00e9" * ((MAX_ID_BYTES - 1 - len(domain)) // 2 + 1)
    user_id = "@" + localpart + domain
    assert len(user_id) <= 255 < len(user_id.encode())
    assert not is_valid_user_id(user_id)


@pytest.mark.parametrize(
    ("localpart", "strict", "historical"),
    [
        ("alice", True, True),
        ("a.b_c=d-e/f+g", True, True),
        ("", False, True),
        ("Alice", False, True),
        ("a:b", False, False),
        ("a\x00", False, False),
        ("\ud800", False, False),
        ("\udfff", False, False),
        ("\U0010ffff", False, True),
        ("alice\n", False, True),
    ],
)
def test_localpart_grammars(localpart: str, strict: bool, historical: bool) -> None:
    assert is_valid_strict_localpart(localpart) is strict
    assert is_valid_historical_localpart(localpart) is historical


@pytest.mark.parametrize(
    ("identifier", "server"),
    [("@a:example.org", "example.org"), ("#room:x.y:8448", "x.y:8448"),
     ("!opaque:[::1]", "[::1]")],
)
def test_server_of(identifier: str, server: str) -> None:
    assert server_of(identifier) == server


@pytest.mark.parametrize("identifier", ["@alice", "!" + HASH, ""])
def test_server_of_rejects(identifier: str) -> None:
    with pytest.raises((ValueError, IndexError)):
        server_of(identifier)


# Room IDs --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "room_id",
    [
        "!abcdef:example.org",
        "!ABCdef123:example.org:8448",
        "!x:1.2.3.4",
        "!x:[::1]",
        "!:example.org",  # opaque; only the server name is checked
        "!caf\u00e9:example.org",
        "!" + HASH,  # v12: the create event's ID with '!'
        "!" + "A" * 43,
    ],
)
def test_valid_room_ids(room_id: str) -> None:
    assert is_valid_room_id(room_id)


@pytest.mark.parametrize(
    "room_id",
    [
        "abcdef:example.org",
        "$abcdef:example.org",
        "!abcdef:",
        "!abcdef:bad_server",
        "!a\x00b:example.org",
        "!a\ud800b:example.org",
        "!abcdef",  # no server and not a hash
        "!" + HASH[:-1],  # 42 characters
        "!" + HASH + "A",  # 44 characters
        "!" + HASH[:-1] + "+",  # standard, not URL-safe, base64
        "!" + HASH[:-1] + "/",
        "!" + HASH[:-1] + "=",
        "!" + HASH[:-1] + "\n",
        "!",
        "",
        None,
        123,
    ],
)
def test_invalid_room_ids(room_id: object) -> None:
    assert not is_valid_room_id(room_id)


def test_room_id_255_byte_limit() -> None:
    domain = ":example.org"
    fits = "!" + "a" * (255 - 1 - len(domain)) + domain
    assert is_valid_room_id(fits)
    assert not is_valid_room_id("!a" + fits[1:])


# Event IDs ---------------------------------------------------------------------------


@pytest.mark.parametrize("event_id", ["$" + HASH, "$" + "-" * 43, "$" + "_" * 43])
def test_valid_event_ids(event_id: str) -> None:
    assert is_valid_event_id(event_id)
    assert is_valid_hash_id(event_id)


@pytest.mark.parametrize(
    "event_id",
    [
        "$" + HASH[:-1],
        "$" + HASH + "A",
        "$" + HASH[:-1] + "+",
        "$" + HASH[:-1] + "/",
        "$" + HASH[:-1] + "=",
        "$" + HASH[:-1] + "\n",
        "$" + HASH[:-1] + " ",
        "!" + HASH,
        HASH + "A",
        "$0:domain",  # room versions 1 and 2 only
        "$",
        "",
        None,
        44,
    ],
)
def test_invalid_event_ids(event_id: object) -> None:
    assert not is_valid_event_id(event_id)


# Aliases ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "alias",
    ["#room:example.org", "#Room With Spaces:example.org", "#\u65e5\u672c:example.org",
     "#room:example.org:8448", "#:example.org", "#r:[::1]"],
)
def test_valid_aliases(alias: str) -> None:
    assert is_valid_room_alias(alias)


@pytest.mark.parametrize(
    "alias",
    ["room:example.org", "@room:example.org", "#room", "#room:", "#room:bad_name",
     "#ro\x00om:example.org", "#ro\ud800om:example.org", "#room:example.org\n",
     "#" + "a" * 250 + ":example.org", None, 5],
)
def test_invalid_aliases(alias: object) -> None:
    assert not is_valid_room_alias(alias)


# Namespaced identifiers ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "valid"),
    [("m.room.message", True), ("com.example.thing_1-2", True), ("a", True),
     ("a" * 255, True), ("a" * 256, False), ("", False), ("M.room", False), ("1abc", False),
     (".abc", False), ("abc def", False), ("m.room\n", False)],
)
def test_namespaced_identifier(name: str, valid: bool) -> None:
    assert is_valid_namespaced_identifier(name) is valid
