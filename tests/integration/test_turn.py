"""`GET /voip/turnServer`: coturn's use-auth-secret credentials, checked against
an independent HMAC (openssl) and against a real coturn allocation on loopback."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.harness import ROOT, HomeserverProcess, free_port, require
from tests.integration.cs_helpers import error, ok, register

SECRET = "n0t-so-s3cret: with spaces \u00e9"


@pytest.fixture(scope="module")
def turn_server() -> Iterator[HomeserverProcess]:
    port = free_port()
    uris = [f"turn:127.0.0.1:{port}?transport=udp", f"turn:127.0.0.1:{port}?transport=tcp"]
    args = ["--turn-shared-secret", SECRET]
    for uri in uris:
        args += ["--turn-uri", uri]
    server = HomeserverProcess(extra_args=args).start()
    server.turn_port = port  # type: ignore[attr-defined]
    server.turn_uris = uris  # type: ignore[attr-defined]
    yield server
    server.cleanup()


def independent_password(username: str) -> str:
    """HMAC-SHA1 by openssl (not Python) where installed, as coturn computes it."""
    if shutil.which("openssl"):
        digest = subprocess.run(
            ["openssl", "dgst", "-sha1", "-hmac", SECRET, "-binary"], input=username.encode(),
            capture_output=True, check=True, timeout=10).stdout
    else:
        digest = hmac.new(SECRET.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _credentials(server: HomeserverProcess, name: str) -> tuple[str, dict[str, object]]:
    async def scenario() -> tuple[str, dict[str, object]]:
        client = await register(server, name)
        try:
            return client.user_id, await ok(server, "GET", "/voip/turnServer",
                                            token=client.access_token)
        finally:
            await client.close()

    return asyncio.run(scenario())


def test_turn_credentials(turn_server: HomeserverProcess, unique: str) -> None:
    before = int(time.time())
    user_id, answer = _credentials(turn_server, unique)
    assert set(answer) == {"username", "password", "ttl", "uris"}
    assert answer["uris"] == turn_server.turn_uris  # type: ignore[attr-defined]
    assert answer["ttl"] == 86400
    expiry, _, who = str(answer["username"]).partition(":")
    assert who == user_id
    assert before + 86400 <= int(expiry) <= int(time.time()) + 86400
    assert answer["password"] == independent_password(str(answer["username"]))
    assert str(answer["password"]).endswith("=")  # standard, padded base64 (coturn's)


def test_no_turn_configured_answers_empty(server: HomeserverProcess, unique: str) -> None:
    _, answer = _credentials(server, unique)
    assert answer == {}
    asyncio.run(error(server, "GET", "/voip/turnServer", 401, "M_MISSING_TOKEN"))


def test_generate_config_refuses_bad_turn_uri() -> None:
    with tempfile.TemporaryDirectory() as data:
        result = subprocess.run(
            [sys.executable, "-m", "homeserver", "generate-config", "--server-name", "localhost",
             "--data-dir", data, "--turn-uri", "http://turn.example"],
            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "turn:" in result.stderr


def _uclient(port: int, username: str, password: str) -> subprocess.CompletedProcess[str]:
    """One client-to-client allocation on loopback, two messages relayed."""
    return subprocess.run(
        ["turnutils_uclient", "-y", "-n", "2", "-m", "1", "-u", username, "-w", password,
         "-p", str(port), "127.0.0.1"], capture_output=True, text=True, timeout=30)


def test_coturn_accepts_the_credentials(turn_server: HomeserverProcess, unique: str) -> None:
    require(shutil.which("turnserver") is not None and
            shutil.which("turnutils_uclient") is not None, "coturn is not installed")
    port = turn_server.turn_port  # type: ignore[attr-defined]
    _, answer = _credentials(turn_server, unique)
    with tempfile.TemporaryDirectory() as scratch:
        relay = free_port()
        coturn = subprocess.Popen(
            ["turnserver", "-n", "--use-auth-secret", f"--static-auth-secret={SECRET}",
             "--realm=guildhall.test", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1",
             "-p", str(port), "--min-port", str(relay), "--max-port", str(relay + 20),
             "--no-tls", "--no-dtls", "--no-cli", "--allow-loopback-peers",
             "--log-file=stdout", "--simple-log", f"--pidfile={scratch}/pid",
             f"--userdb={scratch}/turndb"],
            stdout=open(Path(scratch) / "log", "wb"), stderr=subprocess.STDOUT)
        try:
            time.sleep(1)  # coturn has no readiness signal on stdout worth parsing
            assert coturn.poll() is None, (Path(scratch) / "log").read_text(errors="replace")
            good = _uclient(port, str(answer["username"]), str(answer["password"]))
            assert good.returncode == 0, good.stdout[-2000:]
            bad = _uclient(port, str(answer["username"]), "AAAA" + str(answer["password"])[4:])
            assert bad.returncode != 0
            expired = f"{int(time.time()) - 60}:@{unique}:localhost"
            stale = _uclient(port, expired, independent_password(expired))
            assert stale.returncode != 0  # coturn enforces the expiry in the username
        finally:
            coturn.terminate()
            try:
                coturn.wait(10)
            except subprocess.TimeoutExpired:
                coturn.kill()
                coturn.wait(5)
