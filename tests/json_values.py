"""Hypothesis strategies for JSON values the Matrix protocol accepts: integers
within canonical JSON's range, no floats (shared by the property tests)."""

from __future__ import annotations

from hypothesis import strategies as st

from federation.protocol.canonical_json import MAX_INT, MIN_INT

json_ints = st.integers(min_value=MIN_INT, max_value=MAX_INT)
json_scalars = st.none() | st.booleans() | json_ints | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=6)
