"""Several of our homeservers federating on loopback.

Each `FederatedServer` is a real `python -m homeserver` process on its own
127.0.0.x address: server name `IP:fedport`, the Client-Server API over plain
HTTP on `IP:clientport`, the federation listener over HTTPS on `IP:fedport`
with a certificate from the session's test CA, which it also trusts for its
outgoing federation requests. Registration is open and rate limits are off.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import yaml

from tests.federation.accounts import PASSWORD, Account, register_open
from tests.federation.certs import IssuedCert, TestCA
from tests.federation.loopback import next_address, reserve_port
from tests.federation.waiting import wait_for_log
from tests.harness import HomeserverProcess, http_json

FEDERATION_START_TIMEOUT_S = 30.0
# Keep servers' directories (configs, logs, databases) after the run, for debugging.
KEEP_TESTBED = os.environ.get("GUILDHALL_KEEP_TESTBED", "") not in ("", "0")
# A restarted peer is retried within seconds, not after the production maximum.
FAST_RETRY = {"min_interval_s": 0.5, "max_interval_s": 5}


def tls_handshake(host: str, port: int, context: ssl.SSLContext,
                  timeout: float = 5.0) -> dict[str, Any]:
    """Connect, complete a TLS handshake verified by `context` (as an IP literal
    server name: no SNI, the IP SAN is checked) and return the peer certificate."""
    with socket.create_connection((host, port), timeout=timeout) as raw, \
            context.wrap_socket(raw, server_hostname=host) as tls:
        return tls.getpeercert() or {}


class FederationListener:
    """Plain requests to a server's TLS federation listener, verified against
    the test CA (ours and Synapse alike)."""

    ca: TestCA
    federation_url: str

    def federation_get(self, path: str, timeout: float = 30) -> tuple[int, Any]:
        """An unauthenticated GET on the federation listener (keys, /version),
        verified against the test CA."""
        return http_json("GET", f"{self.federation_url}{path}", timeout=timeout,
                         context=self.ca.client_context())

    def federation_post(self, path: str, body: Any, timeout: float = 30) -> tuple[int, Any]:
        """An unauthenticated POST on the federation listener (notary key queries)."""
        return http_json("POST", f"{self.federation_url}{path}", body, timeout=timeout,
                         context=self.ca.client_context())


class FederatedServer(FederationListener, HomeserverProcess):
    """One of our homeservers with a TLS federation listener."""

    def __init__(self, ca: TestCA, ip: str | None = None,
                 extra_args: list[str] | None = None) -> None:
        self.ip = ip or next_address()
        self.ca = ca
        self.certificate: IssuedCert = ca.issue(ips=[self.ip], dns_names=["localhost"])
        # Held while the base class picks the client port, so the two differ.
        held = reserve_port(self.ip)
        self.federation_port = int(held.getsockname()[1])
        try:
            super().__init__(
                server_name=f"{self.ip}:{self.federation_port}", host=self.ip,
                extra_args=["--federation-listen", f"{self.ip}:{self.federation_port}",
                            "--tls-cert", str(self.certificate.cert_path),
                            "--tls-key", str(self.certificate.key_path),
                            "--federation-ca", str(ca.cert_path),
                            *(extra_args or [])])
        finally:
            held.close()
        self.configure(federation_retry=FAST_RETRY)

    def configure(self, **options: Any) -> None:
        """Set top-level options of homeserver.yaml (read at the next start)."""
        config = yaml.safe_load(self.config_path.read_text())
        config.update(options)
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    @property
    def federation_url(self) -> str:
        return f"https://{self.ip}:{self.federation_port}"

    def start(self, timeout: float = 30) -> FederatedServer:
        super().start(timeout)
        self.wait_for_federation()
        return self

    def wait_for_federation(self, timeout: float = FEDERATION_START_TIMEOUT_S) -> None:
        """Until the federation listener completes a verified TLS handshake."""
        context = self.ca.client_context()
        deadline = time.monotonic() + timeout
        while True:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"{self.server_name} exited:\n{self.log()}")
            try:
                tls_handshake(self.ip, self.federation_port, context, timeout=2)
                return
            except ssl.SSLCertVerificationError:
                raise  # up, but with a certificate the CA did not issue for this IP
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.server_name}: no federation listener "
                                       f"({exc}):\n{self.log()}") from exc
            time.sleep(0.1)

    def register(self, localpart: str, password: str = PASSWORD) -> Account:
        return register_open(self.base_url, localpart, password)

    def user_id(self, localpart: str) -> str:
        return f"@{localpart}:{self.server_name}"

    def restart(self, crash: bool = False) -> FederatedServer:
        """Stop (SIGKILL with `crash`, else a clean SIGTERM) and start again with the
        same name, ports, key and database."""
        self.stop(signal.SIGKILL if crash else signal.SIGTERM)
        return self.start()

    def full_log(self) -> str:
        """Everything the server logged, across restarts."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait_for_log(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        """The first match of the regular expression `pattern` in the server's log
        (e.g. why a PDU was rejected), waiting up to `timeout` for it."""
        return wait_for_log(self.full_log, pattern, timeout)

    def cleanup(self) -> None:
        self.stop()
        if not KEEP_TESTBED:
            shutil.rmtree(self.data_dir, ignore_errors=True)


class Cluster:
    """Our servers sharing one test CA; `add` makes and starts more of them."""

    def __init__(self, ca: TestCA) -> None:
        self.ca = ca
        self.servers: list[FederatedServer] = []

    def add(self, count: int = 1, extra_args: list[str] | None = None
            ) -> list[FederatedServer]:
        """`count` new servers, started concurrently (each on a new address)."""
        fresh: list[FederatedServer] = []
        for _ in range(count):  # each one owned as soon as it exists: `close` removes it
            fresh.append(FederatedServer(self.ca, extra_args=extra_args))
            self.servers.append(fresh[-1])
        with ThreadPoolExecutor(max_workers=count) as pool:
            list(pool.map(lambda server: server.start(), fresh))
        return fresh

    def stop(self, server: FederatedServer) -> None:
        server.cleanup()
        self.servers.remove(server)

    def close(self) -> None:
        for server in list(self.servers):
            self.stop(server)
