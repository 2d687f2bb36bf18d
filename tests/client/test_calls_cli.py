"""`python -m client call|answer` end to end: two CLI processes through a real homeserver
process on loopback, media over 127.0.0.1 (loopback-only ICE) or through a real coturn."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.client.calls_conftest_fixtures import CallPair, Coturn, make_pair
from tests.client.calls_helpers import assert_pattern, dominant_frequency
from tests.harness import ROOT, HomeserverProcess

pytestmark = pytest.mark.timeout(180)


class Cli:
    """A CLI process whose stdout (JSON lines) goes to a file we can poll."""

    def __init__(self, tmp: Path, name: str, *args: str) -> None:
        self.out = tmp / f"{name}.out"
        self.err = tmp / f"{name}.err"
        env_dir = tmp / f"{name}-config"
        env_dir.mkdir(exist_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "client", *args, "--json", "--config-dir", str(env_dir)],
            cwd=ROOT, stdout=open(self.out, "w"), stderr=open(self.err, "w"))

    def events(self) -> list[dict[str, Any]]:
        lines = self.out.read_text().splitlines() if self.out.exists() else []
        return [json.loads(line) for line in lines if line.startswith("{")]

    def states(self) -> list[str]:
        return [e["state"] for e in self.events() if e.get("event") == "state"]

    def end_reason(self) -> str | None:
        ended = [e for e in self.events() if e.get("state") == "ended"]
        return ended[-1]["reason"] if ended else None

    def wait_event(self, predicate: Any, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events():
                if predicate(event):
                    return event
            assert self.process.poll() is None or any(predicate(e) for e in self.events()), \
                self.describe()
            time.sleep(0.05)
        raise AssertionError(f"timed out; {self.describe()}")

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(f"still running; {self.describe()}") from None

    def describe(self) -> str:
        return (f"exit={self.process.poll()} stdout={self.out.read_text()[-3000:]!r} "
                f"stderr={self.err.read_text()[-3000:]!r}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def _answer(tmp: Path, pair: CallPair, *extra: str) -> Cli:
    cli = Cli(tmp, "bob", "answer", *pair.login_args(pair.bob), "--timeout", "60", *extra)
    cli.wait_event(lambda e: e.get("event") == "waiting")
    return cli


def _call(tmp: Path, pair: CallPair, *extra: str, name: str = "alice") -> Cli:
    return Cli(tmp, name, "call", pair.room_id, *pair.login_args(pair.alice), *extra)


def _check_media(tmp: Path, recording: Path, stats: Path) -> None:
    frequency, seconds = dominant_frequency(recording)
    assert abs(frequency - 440) < 5, frequency
    assert seconds > 2
    summary = json.loads(stats.read_text())
    assert summary["frames"] > 45  # 30 fps pattern for about 3 s of a 4 s call
    assert_pattern(summary["samples"])


def _talk(tmp: Path, pair: CallPair, ice: list[str]) -> tuple[Cli, Cli]:
    recording, stats = tmp / "bob.wav", tmp / "bob-video.json"
    bob = _answer(tmp, pair, "--record", str(recording), "--video-stats", str(stats),
                  "--audio", "tone:660", *ice)
    alice = _call(tmp, pair, "--audio", "tone:440", "--video", "pattern", "--duration", "4",
                  *ice)
    try:
        assert alice.wait(90) == 0, alice.describe()
        assert bob.wait(30) == 0, bob.describe()
    finally:
        alice.stop()
        bob.stop()
    assert alice.states() == ["invite_sent", "connecting", "connected", "ended"]
    assert bob.states() == ["ringing", "connecting", "connected", "ended"]
    assert alice.end_reason() == "user_hangup" and bob.end_reason() == "user_hangup"
    _check_media(tmp, recording, stats)
    return alice, bob


def test_call_through_the_homeserver_on_loopback(call_pair: CallPair, tmp_path: Path) -> None:
    alice, _ = _talk(tmp_path, call_pair, ["--loopback-only"])
    setup = [e for e in alice.events() if e.get("event") == "setup"]
    assert setup and 0 < setup[0]["first_audio_s"] < 5


def test_call_relayed_through_coturn(turn_homeserver: tuple[HomeserverProcess, Coturn],
                                     unique: str, tmp_path: Path) -> None:
    server, coturn = turn_homeserver
    pair = make_pair(server, unique)
    _talk(tmp_path, pair, ["--relay-only"])
    log = coturn.log()
    for user in (pair.alice, pair.bob):  # both sides allocated a relay and bound a peer to it
        for step in ("ALLOCATE processed, success", "CHANNEL_BIND processed, success"):
            assert any(user in line and step in line for line in log.splitlines()), (user, step)


def test_wrong_turn_credentials_are_reported(unique: str, tmp_path: Path,
                                            turn_homeserver: tuple[HomeserverProcess, Coturn]
                                            ) -> None:
    """coturn started with another secret than the homeserver's: aiortc gathers no relay
    candidate and says nothing; the CLI reports it and fails."""
    from tests.harness import free_port

    del turn_homeserver  # only its check that coturn is installed
    impostor = Coturn(free_port(), "not-the-homeserver-secret")
    # Point a fresh homeserver at a coturn that rejects its credentials.
    bad = HomeserverProcess(extra_args=[
        "--turn-uri", f"turn:127.0.0.1:{impostor.port}?transport=udp",
        "--turn-shared-secret", "the-homeserver-secret"]).start()
    impostor.start()
    try:
        pair = make_pair(bad, unique)
        alice = _call(tmp_path, pair, "--relay-only", "--audio", "tone:440")
        assert alice.wait(60) != 0
        errors = [e for e in alice.events() if e.get("event") == "error"]
        assert errors and "TURN" in errors[0]["error"], alice.describe()
        assert alice.end_reason() == "ice_failed"
    finally:
        bad.cleanup()
        impostor.stop()


def test_unanswered_call_ends_as_invite_timeout(call_pair: CallPair, tmp_path: Path) -> None:
    bob = _answer(tmp_path, call_pair, "--loopback-only")  # rings but never picks up...
    bob.process.send_signal(signal.SIGSTOP)  # ...because it is frozen
    try:
        alice = _call(tmp_path, call_pair, "--lifetime", "3", "--video", "none",
                      "--loopback-only")
        assert alice.wait(60) != 0
        assert alice.states() == ["invite_sent", "ended"]
        assert alice.end_reason() == "invite_timeout"
    finally:
        bob.process.send_signal(signal.SIGCONT)
        bob.stop()


def test_glare_ends_in_one_call(call_pair: CallPair, tmp_path: Path) -> None:
    common = ["--video", "none", "--duration", "3", "--loopback-only"]
    alice = _call(tmp_path, call_pair, *common)
    bob = Cli(tmp_path, "bob", "call", call_pair.room_id, *call_pair.login_args(call_pair.bob),
              *common)
    try:
        codes = alice.wait(90), bob.wait(90)
    finally:
        alice.stop()
        bob.stop()
    connected = [{e["call_id"] for e in cli.events() if e.get("state") == "connected"}
                 for cli in (alice, bob)]
    assert len(connected[0]) == 1 and connected[0] == connected[1], (alice.describe(),
                                                                    bob.describe())
    assert codes == (0, 0), (alice.describe(), bob.describe())


def test_killed_peer_ends_the_call_with_ice_timeout(call_pair: CallPair, tmp_path: Path
                                                    ) -> None:
    bob = _answer(tmp_path, call_pair, "--loopback-only")
    alice = _call(tmp_path, call_pair, "--video", "none", "--loopback-only",
                  "--media-timeout", "3")
    try:
        alice.wait_event(lambda e: e.get("state") == "connected")
        bob.wait_event(lambda e: e.get("state") == "connected")
        bob.process.kill()  # the network drops: no hangup, no media
        assert alice.wait(30) != 0
        assert alice.end_reason() == "ice_timeout"
    finally:
        alice.stop()
        bob.stop()


def test_call_a_user_in_a_new_direct_room(call_pair: CallPair, tmp_path: Path) -> None:
    """`call @bob` creates the direct room and invites Bob; `answer --accept-invites` joins
    it and still rings for the invite sent before the join."""
    bob = _answer(tmp_path, call_pair, "--accept-invites", "--loopback-only")
    alice = Cli(tmp_path, "alice", "call", call_pair.bob, *call_pair.login_args(call_pair.alice),
                "--video", "none", "--duration", "2", "--loopback-only")
    try:
        assert alice.wait(90) == 0, alice.describe()
        assert bob.wait(30) == 0, bob.describe()
    finally:
        alice.stop()
        bob.stop()
    calling = next(e for e in alice.events() if e.get("event") == "calling")
    assert calling["invitee"] == call_pair.bob and calling["room_id"] != call_pair.room_id
    assert bob.states() == ["ringing", "connecting", "connected", "ended"]


def test_screen_share_from_the_cli(call_pair: CallPair, tmp_path: Path, xvfb: str) -> None:
    """`call --screen` under a real Xvfb: the share arrives as its own m.screenshare stream."""
    stats = tmp_path / "bob-video.json"
    bob = _answer(tmp_path, call_pair, "--video-stats", str(stats), "--loopback-only")
    alice = _call(tmp_path, call_pair, "--video", "pattern", "--screen", "--duration", "3",
                  "--loopback-only")
    try:
        assert alice.wait(90) == 0, alice.describe()
        assert bob.wait(30) == 0, bob.describe()
    finally:
        alice.stop()
        bob.stop()
    summary = json.loads(stats.read_text())
    assert summary["screen_frames"] > 10 and summary["frames"] > 30, summary
    assert_pattern(summary["samples"])  # the camera stream is not mixed up with the screen


def test_answer_without_a_call_times_out(call_pair: CallPair, tmp_path: Path) -> None:
    bob = Cli(tmp_path, "bob", "answer", *call_pair.login_args(call_pair.bob), "--timeout", "1")
    assert bob.wait(60) == 1
    assert "no call arrived within 1 s" in bob.err.read_text()


def test_missing_devices_fail_before_calling(call_pair: CallPair, tmp_path: Path) -> None:
    alice = _call(tmp_path, call_pair, "--video", "webcam:/dev/no-such-camera")
    assert alice.wait(60) == 1
    assert "no webcam: /dev/no-such-camera does not exist" in alice.err.read_text()
    assert alice.events() == []  # nothing was sent
