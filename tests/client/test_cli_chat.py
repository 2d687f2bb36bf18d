"""The chat command line (`python -m client ...`) as separate processes against a
real homeserver: sessions, send/tail between two clients, rooms, media, errors."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
from pathlib import Path

import pytest

from tests.client.helpers import PASSWORD, run_cli, start_cli, wait_for_line
from tests.harness import HomeserverProcess, http_json

pytestmark = pytest.mark.timeout(180)


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def _fails_cleanly(result: subprocess.CompletedProcess[str], text: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and text in last, result.stderr


def _register(server: HomeserverProcess, config_dir: Path, name: str) -> dict[str, str]:
    out = _ok(run_cli(config_dir, "register", "--homeserver", server.base_url, "--user", name,
                      "--password", PASSWORD, "--json"))
    return json.loads(out)


def test_login_stores_a_private_session_that_later_commands_use(
        client_server: HomeserverProcess, unique: str, tmp_path: Path) -> None:
    first = _register(client_server, tmp_path / "a", unique)
    session_file = Path(first["session_file"])
    assert session_file == tmp_path / "a" / "session.json"
    assert stat.S_IMODE(session_file.stat().st_mode) == 0o600
    # A second login (new device) replaces the stored session; still 0600.
    login = json.loads(_ok(run_cli(tmp_path / "a", "login", "--homeserver",
                                   client_server.base_url, "--user", unique, "--password",
                                   PASSWORD, "--json")))
    assert login["device_id"] != first["device_id"]
    assert stat.S_IMODE(session_file.stat().st_mode) == 0o600
    stored = json.loads(session_file.read_text())
    assert stored["user_id"] == f"@{unique}:localhost"
    assert stored["homeserver_url"] == client_server.base_url
    whoami = json.loads(_ok(run_cli(tmp_path / "a", "whoami", "--json")))
    assert (whoami["user_id"], whoami["device_id"]) == (stored["user_id"], login["device_id"])
    # --config-dir wins over the environment.
    whoami = _ok(run_cli(tmp_path / "elsewhere", "whoami", "--config-dir", str(tmp_path / "a")))
    assert whoami.startswith(stored["user_id"])
    assert "logged out" in _ok(run_cli(tmp_path / "a", "logout"))
    assert not session_file.exists()
    _fails_cleanly(run_cli(tmp_path / "a", "whoami"), "not logged in")


def test_bad_credentials_and_unknown_rooms_fail_cleanly(
        client_server: HomeserverProcess, unique: str, tmp_path: Path) -> None:
    _register(client_server, tmp_path, unique)
    _fails_cleanly(run_cli(tmp_path / "x", "login", "--homeserver", client_server.base_url,
                           "--user", unique, "--password", "wrong"), "M_FORBIDDEN")
    _fails_cleanly(run_cli(tmp_path, "send", "!nope:localhost", "hi"), "M_")
    _fails_cleanly(run_cli(tmp_path, "send", "#nope:localhost", "hi"), "M_NOT_FOUND")
    _fails_cleanly(run_cli(tmp_path, "whoami", "--homeserver", "http://127.0.0.1:9"),
                   "cannot reach")
    _fails_cleanly(run_cli(tmp_path, "login", "--user", "plainname", "--password", "x"),
                   "--homeserver")
    _fails_cleanly(run_cli(tmp_path, "tail", "!nope:localhost", "--timeout", "2"),
                   "has not joined")
    stored = json.loads((tmp_path / "session.json").read_text())
    (tmp_path / "gone").mkdir()
    (tmp_path / "gone" / "session.json").write_text(
        json.dumps({**stored, "homeserver_url": "http://127.0.0.1:9"}))
    _fails_cleanly(run_cli(tmp_path / "gone", "tail", "!x:localhost", "--timeout", "3"),
                   "no sync with http://127.0.0.1:9 within 3.0 s")


def test_send_and_tail_between_two_cli_processes(
        client_server: HomeserverProcess, unique: str, tmp_path: Path) -> None:
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    _register(client_server, alice, f"{unique}a")
    _register(client_server, bob, f"{unique}b")
    alias = f"#{unique}:localhost"
    room_id = _ok(run_cli(alice, "create-room", "Tail test", "--alias", unique,
                          "--invite", f"{unique}b"))
    assert _ok(run_cli(bob, "join", alias)) == room_id
    # Bob tails with per-command credentials (not his stored session), by alias.
    tail = start_cli(tmp_path / "nobody", "tail", alias, "--count", "3", "--json",
                     "--homeserver", client_server.base_url, "--user", f"{unique}b",
                     "--password", PASSWORD, "--timeout", "60")
    human = start_cli(bob, "tail", room_id, "--count", "3", "--no-stream")  # /sync long-polls
    try:
        wait_for_line(tail.stderr, "following")
        wait_for_line(human.stderr, "following")
        sent = [_ok(run_cli(alice, "send", alias, f"line {i}")) for i in range(3)]
        out, err = tail.communicate(timeout=60)
        human_out, _ = human.communicate(timeout=60)
    finally:
        for process in (tail, human):
            if process.poll() is None:
                process.kill()
    assert tail.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["event_id"] for line in lines] == sent
    assert [line["content"]["body"] for line in lines] == ["line 0", "line 1", "line 2"]
    assert all(line["sender"] == f"@{unique}a:localhost" for line in lines)
    assert human.returncode == 0
    assert [line.split("> ", 1)[1] for line in human_out.splitlines()] == \
        ["line 0", "line 1", "line 2"]
    assert all(f"<@{unique}a:localhost>" in line for line in human_out.splitlines())
    # Interrupted, a tail ends cleanly too.
    endless = start_cli(tmp_path / "nobody", "tail", room_id, "--homeserver",
                        client_server.base_url, "--user", f"{unique}b", "--password", PASSWORD)
    wait_for_line(endless.stderr, "following")
    endless.send_signal(signal.SIGINT)
    _, err = endless.communicate(timeout=30)
    assert endless.returncode == 130 and "Traceback" not in err
    # Per-command logins were logged out again: only the stored device remains.
    token = json.loads((bob / "session.json").read_text())["access_token"]
    status, devices = http_json("GET", f"{client_server.base_url}/_matrix/client/v3/devices",
                                token=token)
    assert status == 200 and len(devices["devices"]) == 1
    rooms = [json.loads(line) for line in _ok(run_cli(bob, "rooms", "--json")).splitlines()]
    assert {"room_id": room_id, "name": "Tail test", "alias": alias} == \
        {k: v for k, v in rooms[0].items() if k in ("room_id", "name", "alias")}
    history = _ok(run_cli(bob, "history", alias, "--limit", "3")).splitlines()
    assert [line.split("> ", 1)[1] for line in history] == ["line 0", "line 1", "line 2"]


def test_invite_and_tail_timeout(client_server: HomeserverProcess, unique: str,
                                 tmp_path: Path) -> None:
    alice, carol = tmp_path / "alice", tmp_path / "carol"
    _register(client_server, alice, f"{unique}a")
    _register(client_server, carol, f"{unique}c")
    room_id = _ok(run_cli(alice, "create-room", "Invite test"))
    assert _ok(run_cli(alice, "invite", room_id, f"@{unique}c:localhost")).startswith("invited")
    assert _ok(run_cli(carol, "join", room_id)) == room_id
    listing = _ok(run_cli(carol, "rooms"))
    assert room_id in listing and "Invite test" in listing and "2 members" in listing
    _fails_cleanly(run_cli(carol, "tail", room_id, "--count", "1", "--timeout", "2"),
                   "timed out")
    _fails_cleanly(run_cli(carol, "invite", room_id, "@nobody"), "M_")


def test_upload_and_download_from_the_command_line(
        client_server: HomeserverProcess, unique: str, tmp_path: Path) -> None:
    _register(client_server, tmp_path, unique)
    source = tmp_path / "notes.txt"
    source.write_bytes(os.urandom(5000))
    room_id = _ok(run_cli(tmp_path, "create-room", "Files"))
    uploaded = json.loads(_ok(run_cli(tmp_path, "upload", str(source), "--room", room_id,
                                      "--json")))
    assert uploaded["content_uri"].startswith("mxc://localhost/")
    assert uploaded["content_type"] == "text/plain" and uploaded["size"] == 5000
    target = tmp_path / "copy.txt"
    _ok(run_cli(tmp_path, "download", uploaded["content_uri"], "-o", str(target)))
    assert target.read_bytes() == source.read_bytes()
    history = [json.loads(line) for line in
               _ok(run_cli(tmp_path, "history", room_id, "--json")).splitlines()]
    assert history[-1]["content"]["url"] == uploaded["content_uri"]
    _fails_cleanly(run_cli(tmp_path, "download", "mxc://localhost/missing", "-o",
                           str(target)), "M_NOT_FOUND")
    _fails_cleanly(run_cli(tmp_path, "upload", str(tmp_path / "absent")), "absent")
