"""An unmodified Synapse from PyPI as a federation peer on loopback.

Synapse is installed into `.bench/synapse-venv` by `bench.synapse_server.ensure_synapse`
(the pinned version the benchmarks use), once per machine, under a file lock
so that two xdist workers never install at the same time. `SynapsePeer`
writes a config that federates on loopback as MATRIX_DIGEST.md section 5.9
says: an `IP:port` server name, an HTTPS federation listener with a
certificate from the test CA, that CA trusted with verification on, no IP
blocking, no key servers, open registration, no rate limits, fast retries.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import signedjson.key
import yaml

from bench.synapse_server import DEFAULT_VENV, RATE_LIMITS, ensure_synapse, synapse_log_config
from tests.federation.accounts import PASSWORD, Account, register_open
from tests.federation.certs import TestCA
from tests.federation.cluster import KEEP_TESTBED, FederationListener, tls_handshake
from tests.federation.loopback import distinct_free_ports, next_address
from tests.federation.waiting import wait_for_log
from tests.harness import http_json

START_TIMEOUT_S = 90.0
STOP_GRACE_S = 15.0
_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                    "ALL_PROXY")


@contextlib.contextmanager
def _install_lock(venv: Path) -> Iterator[None]:
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f"{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def install_synapse(venv: Path = DEFAULT_VENV) -> Path:
    """The Synapse venv's python, installing Synapse from PyPI on first use."""
    with _install_lock(venv):
        return ensure_synapse(venv)


def _environment() -> dict[str, str]:
    """Ours minus proxies: Synapse would send federation traffic through them."""
    env = {k: v for k, v in os.environ.items() if k not in _PROXY_VARIABLES}
    env["no_proxy"] = "*"
    return env


class SynapsePeer(FederationListener):
    """One Synapse process: client API on http://IP:clientport, federation on
    https://IP:fedport, server name IP:fedport."""

    def __init__(self, ca: TestCA, python: Path, ip: str | None = None,
                 room_version: str | None = None) -> None:
        self.ca = ca
        self.python = python
        self.ip = ip or next_address()
        self.federation_port, self.client_port = distinct_free_ports(self.ip, 2)
        self.server_name = f"{self.ip}:{self.federation_port}"
        self.room_version = room_version
        self.dir = Path(tempfile.mkdtemp(prefix="guildhall-synapse-"))
        self.certificate = ca.issue(ips=[self.ip], dns_names=["localhost"])
        self.registration_shared_secret = secrets.token_urlsafe(32)
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_seconds = 0.0
        self._write_files()

    # -- configuration -------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://{self.ip}:{self.client_port}"

    @property
    def federation_url(self) -> str:
        return f"https://{self.ip}:{self.federation_port}"

    @property
    def log_path(self) -> Path:
        """Synapse's own log (INFO): requests in and out, federation errors."""
        return self.dir / "homeserver.log"

    def config(self) -> dict[str, Any]:
        d = self.dir
        config: dict[str, Any] = {
            "server_name": self.server_name,
            "public_baseurl": f"{self.base_url}/",
            "pid_file": str(d / "homeserver.pid"),
            "listeners": [
                {"port": self.client_port, "bind_addresses": [self.ip], "type": "http",
                 "tls": False, "x_forwarded": False,
                 "resources": [{"names": ["client"], "compress": False}]},
                {"port": self.federation_port, "bind_addresses": [self.ip], "type": "http",
                 "tls": True, "x_forwarded": False,
                 "resources": [{"names": ["federation", "keys"], "compress": False}]},
            ],
            "tls_certificate_path": str(self.certificate.cert_path),
            "tls_private_key_path": str(self.certificate.key_path),
            "federation_verify_certificates": True,
            "federation_custom_ca_list": [str(self.ca.cert_path)],
            # Synapse 1.163 reads only the *_blacklist spellings; the defaults block 127/8.
            "federation_ip_range_blacklist": [],
            "ip_range_blacklist": [],
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "report_stats": False,
            "database": {"name": "sqlite3", "args": {"database": str(d / "homeserver.db")}},
            "log_config": str(d / "log.config"),
            "media_store_path": str(d / "media_store"),
            "signing_key_path": str(d / "signing.key"),
            "enable_registration": True,
            "enable_registration_without_verification": True,
            "registration_shared_secret": self.registration_shared_secret,
            "macaroon_secret_key": secrets.token_urlsafe(32),
            "form_secret": secrets.token_urlsafe(32),
            "room_list_publication_rules": [{"action": "allow"}],
            "allow_public_rooms_over_federation": True,
            # A restarted peer is retried within seconds, not after Synapse's 10 minutes.
            "federation": {
                "client_timeout": "20s",
                "max_long_retries": 3,
                "max_long_retry_delay": "2s",
                "max_short_retries": 2,
                "max_short_retry_delay": "1s",
                "destination_min_retry_interval": "1s",
                "destination_retry_multiplier": 1,
                "destination_max_retry_interval": "5s",
            },
            **RATE_LIMITS,
        }
        if self.room_version:
            config["default_room_version"] = self.room_version
        return config

    def _write_files(self) -> None:
        log_config = synapse_log_config(self.log_path, "INFO")
        (self.dir / "log.config").write_text(yaml.safe_dump(log_config))
        (self.dir / "homeserver.yaml").write_text(yaml.safe_dump(self.config(),
                                                                 sort_keys=False))
        # Our own key instead of `--generate-keys`: saves a Synapse start-up.
        with open(self.dir / "signing.key", "w") as key_file:
            signedjson.key.write_signing_keys(
                key_file, [signedjson.key.generate_signing_key("a_" + secrets.token_hex(2))])

    # -- lifecycle -----------------------------------------------------------
    def start(self, timeout: float = START_TIMEOUT_S) -> SynapsePeer:
        """Start and wait until both the client API and the federation listener answer."""
        started = time.monotonic()
        with open(self.dir / "stdout.log", "ab") as out:
            self.process = subprocess.Popen(
                [str(self.python), "-m", "synapse.app.homeserver",
                 "-c", str(self.dir / "homeserver.yaml")],
                cwd=self.dir, env=_environment(), stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL)
        deadline = started + timeout
        while not self._answers():
            if self.process.poll() is not None:
                raise RuntimeError(f"Synapse exited early ({self.process.returncode}):\n"
                                   f"{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Synapse did not answer within {timeout:.0f} s:\n"
                                   f"{self.log_tail()}")
            time.sleep(0.2)
        self.startup_seconds = time.monotonic() - started
        return self

    def _answers(self) -> bool:
        try:
            status, _ = http_json("GET", f"{self.base_url}/_matrix/client/versions", timeout=2)
            if status != 200:
                return False
            tls_handshake(self.ip, self.federation_port, self.ca.client_context(), timeout=2)
            return True
        except OSError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        """SIGTERM (a clean stop) or SIGKILL; a SIGTERM ignored for 15 s becomes SIGKILL."""
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        return process.returncode

    def restart(self, crash: bool = False) -> SynapsePeer:
        self.stop(signal.SIGKILL if crash else signal.SIGTERM)
        return self.start()

    def cleanup(self) -> None:
        self.stop()
        if not KEEP_TESTBED:
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- accounts ------------------------------------------------------------
    def register(self, localpart: str, password: str = PASSWORD,
                 admin: bool = False) -> Account:
        """An account made through Synapse's shared-secret admin registration."""
        url = f"{self.base_url}/_synapse/admin/v1/register"
        status, answer = http_json("GET", url)
        assert status == 200, (status, answer)
        nonce = answer["nonce"]
        mac = hmac.new(self.registration_shared_secret.encode(), digestmod=hashlib.sha1)
        for part in (nonce, localpart, password):
            mac.update(part.encode())
            mac.update(b"\x00")
        mac.update(b"admin" if admin else b"notadmin")
        status, answer = http_json("POST", url, {
            "nonce": nonce, "username": localpart, "password": password, "admin": admin,
            "mac": mac.hexdigest()})
        if status != 200:
            raise AssertionError(f"Synapse registration of {localpart}: {status} {answer}")
        return Account(answer["user_id"], answer["access_token"], answer["device_id"],
                       password, self.base_url)

    def register_open(self, localpart: str, password: str = PASSWORD) -> Account:
        """An account made through open registration, as any client would."""
        return register_open(self.base_url, localpart, password)

    def user_id(self, localpart: str) -> str:
        return f"@{localpart}:{self.server_name}"

    # -- logs ----------------------------------------------------------------
    def log(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")
        return ""

    def log_tail(self, chars: int = 5000) -> str:
        text = ""
        with contextlib.suppress(OSError):
            text = (self.dir / "stdout.log").read_text(errors="replace")[-chars:]
        return text + self.log()[-chars:]

    def wait_for_log(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        """The first match of the regular expression `pattern` in Synapse's log."""
        return wait_for_log(self.log, pattern, timeout)
