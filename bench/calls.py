"""Call benchmark (issue 6): set-up time and CPU per call, through a real homeserver.

* Set-up time: the caller's time from sending `m.call.invite` to its first received audio
  frame (the callee answers at once), over N calls (default 20): p50/p90/max. Two SDK
  clients and two call engines in this process, signalling through the homeserver's
  WebSocket stream, media over 127.0.0.1 (loopback-only ICE).
* CPU per active call: `python -m client call` and `answer` as two processes; once both
  are connected, each process's CPU time (utime+stime from /proc) over a fixed window,
  median of repeats. An audio call (Opus both ways) and a 640x480 video call (VP8 pattern
  plus Opus, both ways). 100 % = one core.

Run: `python -m bench.calls [--calls 20] [--window 10] [--repeats 3]`; the report goes to
`bench/results/calls-<date>.md` and `.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from client.calls.engine import CallEngine, CallOptions, MediaSet
from client.calls.ice import IceSettings
from client.calls.matrix import attach_engine
from client.calls.state import CallState
from client.media import NullSink, TrackSource
from client.media.synthetic import ToneTrack
from client.sdk.client import MatrixClient

from .guildhall_server import ROOT, GuildhallServer, guildhall_version
from .procstat import cpu_seconds
from .stream_fanout import percentile

RESULTS = Path(__file__).resolve().parent / "results"
PASSWORD = "bench-calls-password"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _pair(base_url: str, tag: str) -> tuple[MatrixClient, MatrixClient, str]:
    alice = await MatrixClient.register(base_url, f"alice{tag}", PASSWORD)
    bob = await MatrixClient.register(base_url, f"bob{tag}", PASSWORD)
    room_id = await alice.create_room(name="bench calls", invite=[bob.user_id])
    await bob.join(room_id)
    return alice, bob, room_id


def _tone() -> TrackSource:
    return TrackSource("audio", ToneTrack(440))


# -- set-up time --------------------------------------------------------------------------------

async def measure_setup(base_url: str, calls: int) -> list[float]:
    alice, bob, room_id = await _pair(base_url, f"s{int(time.time())}")
    options = CallOptions(ice=IceSettings(loopback_only=True))
    caller, callee = attach_engine(alice, options), attach_engine(bob, options)
    callee.on_incoming(lambda session: asyncio.ensure_future(session.answer(
        MediaSet(sources=[_tone()], audio_sink=NullSink("audio")))))
    await alice.start()
    await bob.start()
    setups: list[float] = []
    try:
        for _ in range(calls):
            setups.append(await _one_call(caller, callee, room_id))
    finally:
        await alice.close()
        await bob.close()
    return setups


async def _one_call(caller: CallEngine, callee: CallEngine, room_id: str) -> float:
    sink = NullSink("audio")
    media = MediaSet(sources=[_tone()], audio_sink=sink)
    session = await caller.place_call(room_id, media)
    await asyncio.wait_for(sink.first_frame.wait(), 30)
    assert session.invite_sent_at is not None and sink.first_frame_at is not None
    setup = sink.first_frame_at - session.invite_sent_at
    await session.hangup()
    for peer in callee.sessions.values():
        if not peer.call.ended:
            await peer.wait_ended(10)
    for source in media.sources:
        source.close()
    await sink.close()
    assert session.state is CallState.ENDED
    return setup


# -- CPU per call ---------------------------------------------------------------------------------

def _cli(args: list[str], out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "client", *args, "--json",
                             "--loopback-only", "--config-dir", str(out.parent)],
                            cwd=ROOT, stdout=open(out, "w"), stderr=subprocess.DEVNULL)


def _wait_line(path: Path, needle: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and needle in path.read_text():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{path.name}: no {needle!r} in {path.read_text()[-2000:]!r}")


def measure_cpu(base_url: str, users: tuple[str, str, str], video: bool, window: float
                ) -> dict[str, float]:
    """CPU % of one core for the caller and the callee over `window` seconds of a call."""
    alice, bob, room_id = users
    media = ["--audio", "tone:440", "--video", "pattern" if video else "none"]
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        login = ["--homeserver", base_url, "--password", PASSWORD]
        callee = _cli(["answer", "--user", bob, *login, *media, "--timeout", "60"],
                      folder / "bob.out")
        _wait_line(folder / "bob.out", '"waiting"')
        caller = _cli(["call", room_id, "--user", alice, *login, *media], folder / "alice.out")
        try:
            for path in (folder / "alice.out", folder / "bob.out"):
                _wait_line(path, '"connected"')
            time.sleep(1.0)  # past the first keyframes and jitter-buffer fill
            before = cpu_seconds(caller.pid), cpu_seconds(callee.pid)
            time.sleep(window)
            after = cpu_seconds(caller.pid), cpu_seconds(callee.pid)
        finally:
            caller.terminate()  # SIGTERM hangs up cleanly
            caller.wait(30)
            callee.wait(30)
    return {"caller": 100 * (after[0] - before[0]) / window,
            "callee": 100 * (after[1] - before[1]) / window}


async def _cpu_users(base_url: str) -> tuple[str, str, str]:
    alice, bob, room_id = await _pair(base_url, f"c{int(time.time())}")
    users = (alice.user_id, bob.user_id, room_id)
    await alice.close()
    await bob.close()
    return users


def _median_cpu(runs: list[dict[str, float]]) -> dict[str, float]:
    return {side: statistics.median(run[side] for run in runs) for side in ("caller", "callee")}


# -- report -----------------------------------------------------------------------------------------

def write_report(results: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y-%m-%d-%H%M", time.gmtime())
    (RESULTS / f"calls-{stamp}.json").write_text(json.dumps(results, indent=2))
    setup = results["setup_ms"]
    lines = [
        f"# Call benchmark, {results['date']}", "",
        (f"Guildhall {results['version']}; Python {results['python']}; "
         f"{results['cpus']} CPUs (shared). Homeserver on SQLite, 127.0.0.1; media on "
         "127.0.0.1 (loopback-only ICE), aiortc defaults (Opus 48 kHz, VP8)."), "",
        "## Set-up time (invite sent -> caller's first received audio frame)", "",
        f"{results['calls']} calls, callee answers at once.", "",
        "| p50 | p90 | max | min |", "|---|---|---|---|",
        (f"| {setup['p50']:.0f} ms | {setup['p90']:.0f} ms | {setup['max']:.0f} ms "
         f"| {setup['min']:.0f} ms |"), "",
        "## CPU per active call (100 % = one core)", "",
        (f"Each side is its own `python -m client` process; CPU over a "
         f"{results['window_s']:g} s window once connected, median of {results['repeats']} "
         "calls. Both sides send."), "",
        "| call | caller | callee | both |", "|---|---|---|---|"]
    for name, label in (("audio", "audio (Opus both ways)"),
                        ("video", "video 640x480 VP8 + Opus, both ways")):
        cpu = results["cpu_percent"][name]
        lines.append(f"| {label} | {cpu['caller']:.1f} % | {cpu['callee']:.1f} % "
                     f"| {cpu['caller'] + cpu['callee']:.1f} % |")
    lines += ["", "Raw runs are in the JSON file beside this one."]
    path = RESULTS / f"calls-{stamp}.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    server = GuildhallServer(port=_free_port(), database_url=None, server_name="localhost",
                             log_level="WARNING").start()
    try:
        setups = asyncio.run(measure_setup(server.base_url, args.calls))
        users = asyncio.run(_cpu_users(server.base_url))
        runs = {kind: [measure_cpu(server.base_url, users, kind == "video", args.window)
                       for _ in range(args.repeats)] for kind in ("audio", "video")}
    finally:
        server.cleanup()
    setup_ms = [s * 1000 for s in setups]
    results = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "version": guildhall_version(), "python": platform.python_version(),
        "cpus": os.cpu_count(), "calls": args.calls, "window_s": args.window,
        "repeats": args.repeats,
        "setup_ms": {"p50": percentile(setup_ms, 50), "p90": percentile(setup_ms, 90),
                     "max": max(setup_ms), "min": min(setup_ms), "all": setup_ms},
        "cpu_percent": {kind: _median_cpu(kind_runs) for kind, kind_runs in runs.items()},
        "cpu_runs": runs,
    }
    path = write_report(results)
    print(path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
