"""m.room.server_acl matching (spec: "Server Access Control Lists")."""

from __future__ import annotations

import pytest

from federation.acl import server_allowed


def test_no_acl_allows_everyone() -> None:
    assert server_allowed(None, "anything.example")


@pytest.mark.parametrize("server, allowed", [
    ("good.example", True),
    ("good.example:8448", True),  # ports are ignored
    ("sub.good.example", False),
    ("evil.example", False),
    ("a.evil.example", False),
    ("friends.org", True),
    ("notfriends.org", False),
])
def test_allow_and_deny_globs(server: str, allowed: bool) -> None:
    acl = {"allow": ["good.example", "*friends.org", "*.evil.example", "evil.example"],
           "deny": ["*.evil.example", "evil.example", "notfriends.org"]}
    assert server_allowed(acl, server) is allowed


def test_deny_wins_over_allow() -> None:
    assert not server_allowed({"allow": ["*"], "deny": ["bad.example"]}, "bad.example")
    assert server_allowed({"allow": ["*"], "deny": ["bad.example"]}, "good.example")


def test_missing_allow_denies_everyone() -> None:
    assert not server_allowed({}, "good.example")
    assert not server_allowed({"deny": []}, "good.example")


def test_question_mark_matches_exactly_one_character() -> None:
    acl = {"allow": ["s?.example"]}
    assert server_allowed(acl, "s1.example")
    assert not server_allowed(acl, "s.example")
    assert not server_allowed(acl, "s12.example")


def test_glob_characters_are_not_regex() -> None:
    acl = {"allow": ["a.b", "x+y"]}
    assert server_allowed(acl, "a.b")
    assert not server_allowed(acl, "axb")
    assert server_allowed(acl, "x+y")
    assert not server_allowed(acl, "xxy")


def test_matching_ignores_case() -> None:
    assert server_allowed({"allow": ["Good.Example"]}, "good.example:443")


@pytest.mark.parametrize("server", ["127.0.0.2:8448", "127.0.0.2", "[::1]:8448", "[::1]"])
def test_ip_literals(server: str) -> None:
    assert server_allowed({"allow": ["*"]}, server)
    assert server_allowed({"allow": ["*"], "allow_ip_literals": True}, server)
    assert not server_allowed({"allow": ["*"], "allow_ip_literals": False}, server)
    # Only a real false disables IP literals.
    assert server_allowed({"allow": ["*"], "allow_ip_literals": "no"}, server)


def test_hostnames_are_not_ip_literals() -> None:
    assert server_allowed({"allow": ["*"], "allow_ip_literals": False}, "host.example:8448")


def test_malformed_content_never_raises() -> None:
    assert not server_allowed({"allow": "*"}, "a.example")
    assert server_allowed({"allow": [1, None, "*"], "deny": {"x": 1}}, "a.example")
    # An invalid name is judged as it stands.
    assert not server_allowed({"allow": ["good.example"]}, "bad name::")
    assert not server_allowed({"allow": ["*"], "deny": ["*"]}, "a.example")
