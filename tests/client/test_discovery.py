"""Homeserver discovery from a user ID: `.well-known/matrix/client` served by a
tiny loopback HTTP server, for the SDK and the command line."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from client.sdk.client import MatrixClient
from client.sdk.errors import DiscoveryError
from tests.client.helpers import PASSWORD, cli_env, run
from tests.client.proxies import serve_well_known
from tests.harness import ROOT, HomeserverProcess, free_port

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def named_server() -> Iterator[tuple[HomeserverProcess, int]]:
    """A homeserver whose server name is the loopback host:port of a well-known server."""
    well_known_port = free_port()
    server = HomeserverProcess(server_name=f"127.0.0.1:{well_known_port}").start()
    yield server, well_known_port
    server.cleanup()


async def _with_well_known(body: Any, port: int, coro: Any, status: int = 200) -> Any:
    runner, _ = await serve_well_known(body, status=status, port=port)
    try:
        return await coro
    finally:
        await runner.cleanup()


def test_sdk_discovers_the_homeserver(named_server: tuple[HomeserverProcess, int],
                                      unique: str) -> None:
    server, port = named_server
    user_id = f"@{unique}:127.0.0.1:{port}"

    async def scenario() -> None:
        registered = await _with_well_known(
            {"m.homeserver": {"base_url": server.base_url + "/"}}, port,
            MatrixClient.register(None, user_id, PASSWORD))
        assert registered.user_id == user_id
        assert registered.homeserver_url == server.base_url
        await registered.close()
        logged_in = await _with_well_known(
            {"m.homeserver": {"base_url": server.base_url}}, port,
            MatrixClient.login(None, user_id, PASSWORD))
        assert (await logged_in.whoami())["user_id"] == user_id
        await logged_in.close()

    run(scenario())


@pytest.mark.parametrize(("body", "status", "message"), [
    (b"{not json", 200, "is not JSON"),
    ({"m.homeserver": {}}, 200, "no m.homeserver.base_url"),
    ({"m.homeserver": {"base_url": "ftp://x"}}, 200, "invalid base_url"),
    ({"m.homeserver": {"base_url": "http://127.0.0.1:9"}}, 200, "not a Matrix homeserver"),
    ({"errcode": "M_UNKNOWN"}, 500, "answered HTTP 500"),
    # 404: IGNORE, so the server name itself is tried, and it is no homeserver.
    ({"errcode": "M_NOT_FOUND"}, 404, "not a Matrix homeserver"),
])
def test_discovery_failures(named_server: tuple[HomeserverProcess, int], body: Any,
                            status: int, message: str) -> None:
    _, port = named_server

    async def scenario() -> None:
        with pytest.raises(DiscoveryError) as failure:
            await _with_well_known(body, port, MatrixClient.login(
                None, f"@someone:127.0.0.1:{port}", PASSWORD), status=status)
        assert message in str(failure.value)

    run(scenario())


def test_cli_login_by_discovery(named_server: tuple[HomeserverProcess, int], unique: str,
                                tmp_path: Path) -> None:
    server, port = named_server
    user_id = f"@{unique}:127.0.0.1:{port}"

    async def cli(*args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "client", *args, cwd=ROOT, env=cli_env(tmp_path),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await process.communicate()
        return process.returncode or 0, out.decode(), err.decode()

    async def scenario() -> None:
        good = {"m.homeserver": {"base_url": server.base_url}}
        code, out, err = await _with_well_known(good, port, cli(
            "register", "--user", user_id, "--password", PASSWORD, "--json"))
        assert code == 0, err
        assert json.loads(out)["homeserver"] == server.base_url
        code, out, err = await _with_well_known(b"{", port, cli(
            "login", "--user", user_id, "--password", PASSWORD))
        assert code == 1 and "Traceback" not in err
        assert err.startswith("error: ") and "is not JSON" in err

    run(scenario())
    stored = json.loads((tmp_path / "session.json").read_text())
    assert stored["homeserver_url"] == server.base_url and stored["user_id"] == user_id
