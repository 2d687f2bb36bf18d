"""The stored text of a PDU (`pdu_json`) reads back as what the json module
wrote before: equal values, whichever encoder wrote it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from homeserver.storage.event_rows import pdu_json
from tests.json_values import json_values


@settings(max_examples=300, deadline=None)
@given(pdu=st.dictionaries(st.text(max_size=10), json_values, max_size=8))
def test_stored_text_reads_back_as_the_json_module_wrote_it(pdu: dict[str, Any]) -> None:
    assert json.loads(pdu_json(pdu)) == json.loads(json.dumps(pdu, ensure_ascii=False)) == pdu


@pytest.mark.parametrize("pdu", [
    {"content": {"body": "lone \ud800 surrogate"}},
    {"content": {"big": 2**70}},
    {"content": {"nul": "a\x00b", "sep": "\u2028", "emoji": "\U0001f600"}},
])
def test_what_orjson_refuses_or_escapes_is_stored_as_before(pdu: dict[str, Any]) -> None:
    assert json.loads(pdu_json(pdu)) == pdu
