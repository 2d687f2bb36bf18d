"""Call fixtures (imported by tests/client/conftest.py): two users sharing a room on a real
homeserver, a homeserver with TURN configured, and a real coturn on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.client.helpers import PASSWORD, new_client, run, wait_for
from tests.harness import HomeserverProcess, free_port, require

__all__ = ["call_pair", "turn_homeserver", "xvfb"]  # the fixtures conftest.py imports

TURN_SECRET = "guildhall-calls-turn-secret"


@dataclass
class CallPair:
    server: HomeserverProcess
    alice: str
    bob: str
    room_id: str
    password: str = PASSWORD

    def login_args(self, user: str) -> list[str]:
        return ["--homeserver", self.server.base_url, "--user", user,
                "--password", self.password]


def make_pair(server: HomeserverProcess, name: str) -> CallPair:
    """Alice and Bob, both joined to one room that Alice created."""
    async def scenario() -> CallPair:
        alice = await new_client(server, f"{name}a")
        bob = await new_client(server, f"{name}b")
        try:
            room_id = await alice.create_room(name="call room", invite=[bob.user_id])
            await bob.join(room_id)
            return CallPair(server, alice.user_id, bob.user_id, room_id)
        finally:
            await alice.close()
            await bob.close()

    return run(scenario())


@pytest.fixture
def call_pair(client_server: HomeserverProcess, unique: str) -> CallPair:
    return make_pair(client_server, unique)


class Coturn:
    """coturn with the shared-secret scheme on 127.0.0.1, relaying to loopback peers."""

    def __init__(self, port: int, secret: str) -> None:
        self.port, self.secret = port, secret
        self.scratch = Path(tempfile.mkdtemp(prefix="guildhall-turn-"))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Coturn:
        relay = free_port()
        self.process = subprocess.Popen(
            ["turnserver", "-n", "-v", "--use-auth-secret", f"--static-auth-secret={self.secret}",
             "--realm=guildhall.test", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1",
             "-p", str(self.port), "--min-port", str(relay), "--max-port", str(relay + 40),
             "--no-tls", "--no-dtls", "--no-cli", "--allow-loopback-peers",
             "--log-file=stdout", "--simple-log", f"--pidfile={self.scratch}/pid",
             f"--userdb={self.scratch}/turndb"],
            stdout=open(self.scratch / "log", "wb"), stderr=subprocess.STDOUT)
        run(wait_for(self._listening, 10, "coturn to listen"))
        return self

    def _listening(self) -> bool:
        assert self.process is not None and self.process.poll() is None, self.log()
        return "listener opened" in self.log() or "Total General servers" in self.log()

    def log(self) -> str:
        try:
            return (self.scratch / "log").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        shutil.rmtree(self.scratch, ignore_errors=True)


@pytest.fixture(scope="module")
def turn_homeserver() -> Iterator[tuple[HomeserverProcess, Coturn]]:
    """A homeserver whose /voip/turnServer points at a real coturn on 127.0.0.1."""
    require(shutil.which("turnserver") is not None, "coturn (turnserver) is not installed")
    port = free_port()
    coturn = Coturn(port, TURN_SECRET).start()
    server = HomeserverProcess(extra_args=[
        "--turn-uri", f"turn:127.0.0.1:{port}?transport=udp",
        "--turn-shared-secret", TURN_SECRET]).start()
    time.sleep(0.2)
    yield server, coturn
    server.cleanup()
    coturn.stop()


@pytest.fixture
def xvfb(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    require(shutil.which("Xvfb") is not None, "Xvfb is not installed")
    display = f":{90 + os.getpid() % 500}"
    process = subprocess.Popen(["Xvfb", display, "-screen", "0", "640x480x24", "-noreset",
                                "-nolisten", "tcp"], stderr=subprocess.DEVNULL)
    socket_path = Path(f"/tmp/.X11-unix/X{display[1:]}")
    deadline = time.monotonic() + 10
    while not socket_path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    monkeypatch.setenv("DISPLAY", display)
    yield display
    process.terminate()
    process.wait(10)
