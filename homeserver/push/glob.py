"""Glob-style matching (spec appendix "Glob-style matching") for push rules.

`*` matches zero or more characters, `?` exactly one; matching is
case-insensitive. "Word" matching (push module, `event_match` on
`content.body`) accepts any substring that starts and ends at a word boundary:
the start or end of the value, or a character not in `[A-Za-z0-9_]`.

Patterns come from users, so matching must not backtrack exponentially: a
pattern is split at its stars into fixed-length chunks, found left to right
(the leftmost placement of each chunk is always the best one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

_FLAGS = re.IGNORECASE | re.DOTALL
_NON_WORD = "[^A-Za-z0-9_]"
# A substring may start where no word character precedes it, or with a
# non-word character; likewise at its end.
_WORD_START = f"(?:(?<![A-Za-z0-9_])|(?={_NON_WORD}))"
_WORD_END = f"(?:(?![A-Za-z0-9_])|(?<={_NON_WORD}))"


def _chunks(pattern: str) -> list[str]:
    """Fixed-length chunks the stars separate. In a run of wildcards the `?`s
    move in front of the star (`*?` and `?*` are the same): `a*?b` -> `a?`, `b`."""
    fixed = [""]
    for literal, wild in re.findall(r"([^*?]*)([*?]*)", pattern):
        fixed[-1] += literal + "?" * wild.count("?")
        if "*" in wild:
            fixed.append("")
    return fixed


def _chunk_regex(chunk: str) -> str:
    return "".join("." if c == "?" else re.escape(c) for c in chunk)


@dataclass(frozen=True)
class GlobMatcher:
    """A compiled pattern: fixed chunks that stars separate."""

    chunks: tuple[str, ...]
    words: bool

    def matches(self, text: str) -> bool:
        if len(self.chunks) == 1:
            return self._single(text)
        return self._starred(text)

    def _single(self, text: str) -> bool:
        body = _chunk_regex(self.chunks[0])
        if not self.words:
            return _compile(body).fullmatch(text) is not None
        return _compile(_WORD_START + body + _WORD_END).search(text) is not None

    def _starred(self, text: str) -> bool:
        first, *middle, last = self.chunks
        start_regex = _compile((_WORD_START if self.words else "") + _chunk_regex(first))
        found = start_regex.search(text) if self.words else start_regex.match(text)
        if found is None:
            return False
        end = len(text) if self.words else len(text) - len(last)
        position = found.end()
        for chunk in middle:
            hit = _compile(_chunk_regex(chunk)).search(text, position, end)
            if hit is None:
                return False
            position = hit.end()
        if not self.words:
            return position <= end and _compile(_chunk_regex(last)).fullmatch(text, end) is not None
        return _compile(_chunk_regex(last) + _WORD_END).search(text, position) is not None


@lru_cache(maxsize=4096)
def _compile(regex: str) -> re.Pattern[str]:
    return re.compile(regex, _FLAGS)


@lru_cache(maxsize=4096)
def glob_matcher(pattern: str, words: bool = False) -> GlobMatcher:
    return GlobMatcher(tuple(_chunks(pattern)), words)


def matches(pattern: str, text: str, words: bool = False) -> bool:
    return glob_matcher(pattern, words).matches(text)


def contains_words(text: str, literal: str) -> bool:
    """Whether `literal` (no wildcards) appears in `text` at word boundaries."""
    return _compile(_WORD_START + re.escape(literal) + _WORD_END).search(text) is not None
