"""Helpers for client tests: registering SDK users, running the CLI, waiting."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import schemas
from client.sdk.client import MatrixClient
from tests.harness import ROOT, HomeserverProcess

PASSWORD = "correct horse battery staple"

# Stream frames the clients of new_client received that broke their schema
# (schemas/frames/); conftest fails the test that received one. Recorded, not
# raised: the SDK's loop treats a ValueError as a lost connection and retries.
BAD_FRAMES: list[str] = []


def check_frame(frame: Any) -> None:
    try:
        schemas.validate_frame(frame)
    except schemas.SchemaError as exc:
        BAD_FRAMES.append(f"{exc}: {str(frame)[:500]}")


async def new_client(server: HomeserverProcess | str, name: str, **options: Any
                     ) -> MatrixClient:
    url = server if isinstance(server, str) else server.base_url
    client = await MatrixClient.register(url, name, PASSWORD, **options)
    client.sync.on_frame = check_frame
    return client


async def wait_for(condition: Callable[[], bool], timeout: float = 30,
                   what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def messages_in(client: MatrixClient, room_id: str) -> list[str]:
    return [event["content"].get("body") for event in client.rooms[room_id].timeline
            if event.get("type") == "m.room.message"]


def cli_env(config_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["GUILDHALL_CONFIG_DIR"] = str(config_dir)
    env.pop("XDG_CONFIG_HOME", None)
    return env


def run_cli(config_dir: Path, *args: str, timeout: float = 60
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "client", *args], cwd=ROOT,
                          env=cli_env(config_dir), capture_output=True, text=True,
                          timeout=timeout, check=False)


def start_cli(config_dir: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "client", *args], cwd=ROOT,
                            env=cli_env(config_dir), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_line(stream: Any, needle: str, timeout: float = 30) -> str:
    """Read lines until one contains `needle` (the CLI says when it is following)."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return line
    raise AssertionError(f"no line with {needle!r}; got {seen!r}")


def run(coro: Awaitable[Any], timeout: float = 120) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))  # type: ignore[arg-type]
