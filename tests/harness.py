"""Real components for integration tests, started by the tests on loopback.

`HomeserverProcess` runs `python -m homeserver run` in a subprocess with a
generated config; `PostgresCluster` runs a throwaway PostgreSQL cluster with
Debian's server binaries (as the `postgres` user: PostgreSQL refuses root).
Under CI=true a missing prerequisite fails instead of skipping.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() == "true"


def require(condition: bool, reason: str) -> None:
    """Skip when a prerequisite is missing, but fail under CI=true."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"prerequisite missing under CI: {reason}")
    pytest.skip(reason)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def http_json(method: str, url: str, body: Any = None, token: str | None = None,
              raw: bytes | None = None, timeout: float = 30,
              headers: dict[str, str] | None = None,
              context: ssl.SSLContext | None = None) -> tuple[int, Any]:
    """A JSON request; `context` verifies an https:// server (e.g. against a test CA)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            text = response.read()
            return response.status, json.loads(text) if text else None
    except urllib.error.HTTPError as exc:
        text = exc.read()
        try:
            return exc.code, json.loads(text) if text else None
        except ValueError:
            return exc.code, text


class HomeserverProcess:
    def __init__(self, server_name: str = "localhost", database: str | None = None,
                 host: str = "127.0.0.1", extra_args: list[str] | None = None,
                 rate_limits: bool = False) -> None:
        self.host = host
        self.port = free_port(host)
        self.server_name = server_name
        self.data_dir = Path(tempfile.mkdtemp(prefix="guildhall-hs-"))
        self.database = database
        self.extra_args = extra_args or []
        self.rate_limits = rate_limits
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir / "server.log"
        self.config_path = self.data_dir / "homeserver.yaml"
        self._generate()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _generate(self) -> None:
        args = [sys.executable, "-m", "homeserver", "generate-config",
                "--server-name", self.server_name, "--data-dir", str(self.data_dir),
                "--client-listen", f"{self.host}:{self.port}", "--enable-registration",
                *([] if self.rate_limits else ["--disable-rate-limits"]), *self.extra_args]
        if self.database:
            args += ["--database", self.database]
        subprocess.run(args, check=True, cwd=ROOT, capture_output=True)

    def start(self, timeout: float = 30) -> HomeserverProcess:
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "homeserver", "run", "--config", str(self.config_path)],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"homeserver exited early:\n{self.log()}")
            try:
                status, _ = http_json("GET", f"{self.base_url}/_matrix/client/versions",
                                      timeout=2)
                if status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"homeserver did not start:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        code = self.process.returncode
        self.process = None
        return code

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return ""

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def _pg_bin(name: str) -> str | None:
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / name).exists():
            return str(folder / name)
    return shutil.which(name)


class PostgresCluster:
    """A throwaway cluster on a loopback port, owned by the `postgres` user."""

    def __init__(self) -> None:
        self.initdb = _pg_bin("initdb")
        self.pg_ctl = _pg_bin("pg_ctl")
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="guildhall-pg-"))
        self.user = "postgres"

    @staticmethod
    def available() -> tuple[bool, str]:
        if _pg_bin("initdb") is None or _pg_bin("pg_ctl") is None:
            return False, "PostgreSQL server binaries (initdb, pg_ctl) not installed"
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                return False, "no 'postgres' system user to run PostgreSQL as"
        return True, ""

    @classmethod
    @contextlib.contextmanager
    def running(cls) -> Iterator[PostgresCluster]:
        """A started cluster, stopped afterwards; a test without PostgreSQL is
        skipped, or fails under CI=true (`require`)."""
        ok, reason = cls.available()
        require(ok, reason)
        cluster = cls().start()
        try:
            yield cluster
        finally:
            cluster.stop()

    def _as_owner(self, args: list[str]) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", self.user, "--", *args]
        return args

    def start(self) -> PostgresCluster:
        if os.geteuid() == 0:
            entry = pwd.getpwnam(self.user)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        data = self.dir / "data"
        subprocess.run(self._as_owner([self.initdb, "-D", str(data), "-U", "postgres",
                                       "--auth=trust", "-E", "UTF8", "--no-sync"]),
                       check=True, capture_output=True)
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                   f"-c unix_socket_directories={self.dir} -c fsync=on "
                   "-c max_connections=200 -c shared_buffers=64MB")
        subprocess.run(self._as_owner([self.pg_ctl, "-D", str(data), "-o", options, "-w",
                                       "-l", str(self.dir / "pg.log"), "start"]),
                       check=True, capture_output=True)
        return self

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        subprocess.run(self._as_owner([self.pg_ctl, "-D", str(self.dir / "data"), "-m", "fast",
                                       "stop"]), capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)
