"""The SDK's pure parts: the live model fed /sync bodies, sessions on disk, mxc URIs."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest

from client.sdk.discovery import base_url_for, is_loopback_host, server_name_of
from client.sdk.errors import DiscoveryError, MatrixClientError, NoSessionError
from client.sdk.media import parse_mxc
from client.sdk.model import ClientModel
from client.sdk.session import Session, config_dir, load_session, save_session
from client.sdk.sync_loop import Backoff

ME = "@me:hs"


def _message(event_id: str, body: str, sender: str = "@you:hs", txn: str | None = None
             ) -> dict[str, Any]:
    event: dict[str, Any] = {"event_id": event_id, "type": "m.room.message", "sender": sender,
                             "content": {"msgtype": "m.text", "body": body},
                             "origin_server_ts": 1}
    if txn:
        event["unsigned"] = {"transaction_id": txn}
    return event


def _joined(room_id: str, events: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"next_batch": "s2", "rooms": {"join": {room_id: {
        "timeline": {"events": events, "prev_batch": "p1", "limited": False}, **extra}}}}


def test_replayed_bodies_never_duplicate_events() -> None:
    model = ClientModel(ME)
    body = _joined("!r:hs", [_message("$1", "a"), _message("$2", "b")])
    first = model.apply_sync(body)
    again = model.apply_sync(body)
    assert [e["event_id"] for _, e in first.timeline] == ["$1", "$2"]
    assert again.timeline == []
    assert [e["content"]["body"] for e in model.rooms["!r:hs"].timeline] == ["a", "b"]
    assert model.next_batch == "s2" and model.rooms["!r:hs"].prev_batch == "p1"


def test_local_echo_resolves_by_transaction_id_or_event_id() -> None:
    model = ClientModel(ME)
    room = model.room("!r:hs")
    model.add_local_echo("!r:hs", "t1", "m.room.message", {"body": "one"})
    model.add_local_echo("!r:hs", "t2", "m.room.message", {"body": "two"})
    model.mark_echo("!r:hs", "t2", "sent", "$two")
    assert [e["content"]["body"] for e in room.messages()] == ["one", "two"]
    assert room.pending["t1"]["status"] == "sending" and room.pending["t2"]["status"] == "sent"
    update = model.apply_sync(_joined("!r:hs", [_message("$one", "one", ME, txn="t1"),
                                                _message("$two", "two", ME)]))
    assert update.resolved_echoes == [("!r:hs", "t1"), ("!r:hs", "t2")]
    assert room.pending == {} and [e["event_id"] for e in room.messages()] == ["$one", "$two"]


def test_state_members_ephemeral_and_counts() -> None:
    model = ClientModel(ME)
    member = {"event_id": "$m", "type": "m.room.member", "state_key": "@you:hs",
              "sender": "@you:hs", "content": {"membership": "join", "displayname": "You"}}
    name = {"event_id": "$n", "type": "m.room.name", "state_key": "", "sender": "@you:hs",
            "content": {"name": "Lobby"}}
    model.apply_sync(_joined("!r:hs", [name], state={"events": [member]}, ephemeral={"events": [
        {"type": "m.typing", "content": {"user_ids": ["@you:hs"]}},
        {"type": "m.receipt", "content": {"$n": {"m.read": {"@you:hs": {"ts": 5}}}}}]},
        unread_notifications={"notification_count": 3, "highlight_count": 1}))
    room = model.rooms["!r:hs"]
    assert room.display_name == "Lobby" and room.joined_members == ["@you:hs"]
    assert room.members["@you:hs"].displayname == "You"
    assert room.typing == ["@you:hs"] and room.receipts["@you:hs"] == {"event_id": "$n", "ts": 5}
    assert (room.notification_count, room.highlight_count) == (3, 1)


def test_invites_leaves_presence_and_to_device() -> None:
    model = ClientModel(ME)
    invite_state = [{"type": "m.room.name", "state_key": "", "sender": "@you:hs",
                     "content": {"name": "Secret"}}]
    body = {"next_batch": "s3", "rooms": {"invite": {"!i:hs": {
        "invite_state": {"events": invite_state}}}},
        "presence": {"events": [{"sender": "@you:hs", "type": "m.presence",
                                 "content": {"presence": "online"}}]},
        "to_device": {"events": [{"sender": "@you:hs", "type": "m.call.x", "content": {}}]}}
    update = model.apply_sync(body)
    assert update.invites == [("!i:hs", invite_state)]
    assert model.rooms["!i:hs"].membership == "invite" and model.rooms["!i:hs"].name == "Secret"
    assert model.apply_sync(body).invites == []  # the same invite is not news twice
    assert model.presence["@you:hs"] == {"presence": "online"}
    assert update.to_device[0]["type"] == "m.call.x"
    left = model.apply_sync({"rooms": {"leave": {"!i:hs": {"timeline": {"events": []}}}}})
    assert left.left == ["!i:hs"] and model.rooms["!i:hs"].membership == "leave"


def test_history_is_prepended_oldest_first_without_duplicates() -> None:
    model = ClientModel(ME)
    model.apply_sync(_joined("!r:hs", [_message("$3", "c")]))
    room = model.rooms["!r:hs"]
    added = room.prepend_history([_message("$3", "c"), _message("$2", "b"), _message("$1", "a")])
    assert [e["event_id"] for e in added] == ["$1", "$2"]
    assert [e["event_id"] for e in room.timeline] == ["$1", "$2", "$3"]


def test_session_file_is_private_and_validated(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    session = Session("@me:hs", "DEV", "token", "http://127.0.0.1:1")
    path = save_session(session, tmp_path / "cfg")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_session(tmp_path / "cfg") == session
    path.write_text('{"user_id": "@me:hs"}')
    with pytest.raises(NoSessionError):
        load_session(tmp_path / "cfg")
    path.write_text("[1]")
    with pytest.raises(NoSessionError):
        load_session(tmp_path / "cfg")
    with pytest.raises(NoSessionError):
        load_session(tmp_path / "missing")
    monkeypatch.delenv("GUILDHALL_CONFIG_DIR", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert config_dir() == tmp_path / "xdg" / "guildhall"
    monkeypatch.setenv("GUILDHALL_CONFIG_DIR", str(tmp_path / "env"))
    assert config_dir() == tmp_path / "env"
    assert config_dir(tmp_path / "flag") == tmp_path / "flag"


def test_identifiers_and_backoff() -> None:
    assert server_name_of("@a:example.org:8448") == "example.org:8448"
    with pytest.raises(DiscoveryError):
        server_name_of("alice")
    assert is_loopback_host("127.0.0.1:8008") and is_loopback_host("localhost")
    assert is_loopback_host("[::1]:80") and not is_loopback_host("example.org")
    assert base_url_for("example.org") == "https://example.org"
    assert parse_mxc("mxc://hs/abc") == ("hs", "abc")
    for bad in ("http://hs/abc", "mxc://hs", "mxc:///abc", "mxc://hs/a/b"):
        with pytest.raises(MatrixClientError):
            parse_mxc(bad)
    backoff = Backoff(initial=1, maximum=4)
    delays = [backoff.next_delay() for _ in range(5)]
    assert 0.8 <= delays[0] <= 1.2 and all(d <= 4 * 1.2 for d in delays)
    assert delays[-1] >= 4 * 0.8
    backoff.reset()
    assert backoff.next_delay() <= 1.2
