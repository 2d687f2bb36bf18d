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
from functools import cached_property, lru_cache

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
        if not self._may_match(text):
            return False
        if len(self.chunks) == 1:
            return self._single(text)
        return self._starred(text)

    @cached_property
    def _pieces(self) -> tuple[str, ...] | None:
        """The lowered literal pieces every match contains, when all are ASCII."""
        pieces = tuple(p.lower() for chunk in self.chunks for p in chunk.split("?") if p)
        return pieces if all(p.isascii() for p in pieces) else None

    def _may_match(self, text: str) -> bool:
        """A substring test that spares most texts the regexes (push rules run
        for every recipient of every event). Exact only where ASCII case folding
        is all there is, so other texts always go on to the regexes."""
        if self._pieces is None or not text.isascii():
            return True
        lowered = text.lower()
        return all(piece in lowered for piece in self._pieces)

    @cached_property
    def _regexes(self) -> tuple[re.Pattern[str], ...]:
        """One regex per chunk, built once: the first and the last carry the
        word boundaries their place needs (a single chunk carries both)."""
        bodies = [_chunk_regex(chunk) for chunk in self.chunks]
        if self.words:
            bodies[0] = _WORD_START + bodies[0]
            bodies[-1] += _WORD_END
        return tuple(_compile(body) for body in bodies)

    def _single(self, text: str) -> bool:
        if not self.words:
            return self._regexes[0].fullmatch(text) is not None
        return self._regexes[0].search(text) is not None

    def _starred(self, text: str) -> bool:
        first, *middle, last = self._regexes
        found = first.search(text) if self.words else first.match(text)
        if found is None:
            return False
        end = len(text) if self.words else len(text) - len(self.chunks[-1])
        position = found.end()
        for chunk in middle:
            hit = chunk.search(text, position, end)
            if hit is None:
                return False
            position = hit.end()
        if not self.words:
            return position <= end and last.fullmatch(text, end) is not None
        return last.search(text, position) is not None


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
    if literal.isascii() and text.isascii() and literal.lower() not in text.lower():
        return False  # the common case, without a regex per display name
    return _compile(_WORD_START + re.escape(literal) + _WORD_END).search(text) is not None
