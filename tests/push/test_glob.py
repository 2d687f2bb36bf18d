"""Glob matching: the spec's examples, and agreement with a brute-force reference."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from homeserver.push.glob import _chunks, contains_words, matches


@pytest.mark.parametrize("value, expected", [
    # Spec (event_match note): `lunc?*` against content.topic.
    ("Lunch plans", True), ("LUNCH", True), (" lunch", False), ("lunc", False),
])
def test_spec_whole_value_examples(value: str, expected: bool) -> None:
    assert matches("lunc?*", value) is expected


@pytest.mark.parametrize("body, expected", [
    # Spec (event_match note): `ex*ple` against content.body.
    ("An example event.", True), ("exple", True), ("An exciting triple-whammy", True),
    ("texample", False), ("examples", False), ("", False),
])
def test_spec_word_examples(body: str, expected: bool) -> None:
    assert matches("ex*ple", body, words=True) is expected


@pytest.mark.parametrize("pattern, body, expected", [
    ("cake", "I like cake.", True),
    ("cake", "cakes", False),
    ("cake", "pancake", False),
    ("cake", "CAKE!", True),
    ("cake", "cake_shop", False),  # `_` is a word character
    ("cake", "cake-shop", True),
    ("cake", "café cake", True),
    ("caf", "café", True),  # only [A-Za-z0-9_] are word characters
    ("@room", "hello @room", True),
    ("@room", "x@room", True),  # the pattern itself starts with a boundary
    ("room", "@roomy", False),
    ("cake*lie", "the cake is a lie", True),
    ("cake*lie", "the cake is a lie!", True),
    ("cake*lie", "the cake is a liar", False),
    ("a?c", "abc", True),
    ("a?c", "ac", False),
    ("*", "anything at all", True),
    ("ab*", "xab", False),
])
def test_word_boundaries(pattern: str, body: str, expected: bool) -> None:
    assert matches(pattern, body, words=True) is expected


@pytest.mark.parametrize("pattern, value, expected", [
    ("m.notice", "m.notice", True),
    ("m.notice", "m.noticeX", False),
    ("m.notice", "M.NOTICE", True),
    ("m.*", "m.room.message", True),
    ("*", "", True),
    ("", "", True),
    ("", "x", False),
    ("a*b*c", "abc", True),
    ("a*b*c", "abcd", False),
    ("a*a", "a", False),
    ("a*?*b", "ab", False),
    ("a*?*b", "axb", True),
    ("a.b", "axb", False),  # regex characters are literal
    ("line*", "line\nbreak", True),
])
def test_whole_value(pattern: str, value: str, expected: bool) -> None:
    assert matches(pattern, value) is expected


def test_wildcard_runs_collapse() -> None:
    assert _chunks("a*?*b") == ["a?", "b"]
    assert _chunks("?*?") == ["??", ""]
    assert _chunks("*") == ["", ""]
    assert _chunks("abc") == ["abc"]


def test_no_catastrophic_backtracking() -> None:
    body = "a" * 50_000
    assert not matches("*a*a*a*a*a*a*a*a*b", body, words=True)
    assert not matches("*a*a*a*a*a*a*a*a*b", body)


def test_contains_words_is_literal() -> None:
    assert contains_words("hi Al*ce!", "Al*ce")
    assert not contains_words("hi Alice!", "Al*ce")
    assert contains_words("ping Alice Liddell: tea?", "alice liddell")
    assert not contains_words("Alice Liddellx", "Alice Liddell")


# A reference straight from the definitions, by brute force ----------------------

def _reference_regex(pattern: str) -> re.Pattern[str]:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body, re.IGNORECASE | re.DOTALL)


def _is_word(char: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9_]", char))


def _reference(pattern: str, text: str, words: bool) -> bool:
    regex = _reference_regex(pattern)
    if not words:
        return regex.fullmatch(text) is not None
    n = len(text)
    for i in range(n + 1):
        if not (i == 0 or not _is_word(text[i - 1]) or (i < n and not _is_word(text[i]))):
            continue
        for j in range(i, n + 1):
            if not (j == n or not _is_word(text[j]) or (j > 0 and not _is_word(text[j - 1]))):
                continue
            if regex.fullmatch(text, i, j):
                return True
    return False


_alphabet = st.sampled_from(list("abAB_ -.!é"))
_texts = st.lists(_alphabet, max_size=12).map("".join)
_patterns = st.lists(st.one_of(_alphabet, st.sampled_from(["*", "?"])), max_size=6).map("".join)


@settings(max_examples=600, deadline=None)
@given(_patterns, _texts, st.booleans())
def test_agrees_with_brute_force(pattern: str, text: str, words: bool) -> None:
    assert matches(pattern, text, words=words) is _reference(pattern, text, words)


def test_case_folding_beyond_ascii_still_matches() -> None:
    # The ASCII substring shortcut must not hide these: K (Kelvin sign) folds to k.
    assert matches("kate", "\u212aate")
    assert matches("kate", "hi \u212aate!", words=True)
    assert contains_words("hi \u212aate!", "kate")
    assert not contains_words("hi kat!", "kate")
