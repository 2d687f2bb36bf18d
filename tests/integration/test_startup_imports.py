"""A started server holds only what its configuration uses: without federation,
no Server-Server stack and no TLS (neither pyOpenSSL nor the standard
library's ssl); never OpenSSL's hashes; and no WebSocket stack until a client
opens a stream (their memory: `python -m bench.memory_profile`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.memory_profile import RUN_THEN_LIST_MODULES, SERVER_FLAGS
from tests.harness import ROOT, free_port

# Loaded only to serve federation.
FEDERATION_ONLY = ("OpenSSL", "twisted.internet.ssl", "homeserver.tls",
                   "homeserver.federation_app", "homeserver.rest.federation",
                   "federation.transport", "federation.keys", "federation.receiver",
                   "federation.sender", "federation.membership")
# Never loaded without TLS (h2: HTTP/2 needs TLS's ALPN; whether installed or not).
TLS_ONLY = ("service_identity", "h2", "hpack", "ssl", "_ssl")
# Never loaded: hashlib and hmac use Python's built-in SHA-2 and SHA-1.
OPENSSL_HASHES = ("_hashlib",)
# Loaded when the first client opens a WebSocket stream (homeserver/ws/resource.py).
STREAM_ONLY = ("autobahn", "homeserver.ws.stream")


def _modules_of_started_server(data_dir: Path, *generate_args: str) -> set[str]:
    subprocess.run([sys.executable, "-m", "homeserver", "generate-config",
                    "--server-name", "localhost", "--data-dir", str(data_dir),
                    "--client-listen", f"127.0.0.1:{free_port()}", *generate_args],
                   check=True, cwd=ROOT, capture_output=True, timeout=60)
    run = subprocess.run([sys.executable, *SERVER_FLAGS, "-c", RUN_THEN_LIST_MODULES,
                          str(data_dir / "homeserver.yaml")],
                         check=False, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.splitlines()[-1])
    assert result["exit"] == 0, run.stderr[-3000:]
    return set(result["modules"])


def _within(modules: set[str], roots: tuple[str, ...]) -> list[str]:
    return sorted(name for name in modules
                  if any(name == root or name.startswith(root + ".") for root in roots))


def test_server_without_federation_loads_neither_federation_nor_pyopenssl(tmp_path) -> None:
    modules = _modules_of_started_server(tmp_path)
    assert "homeserver.app" in modules and "twisted.internet.reactor" in modules
    assert _within(modules, FEDERATION_ONLY + TLS_ONLY + STREAM_ONLY + OPENSSL_HASHES) == []
    assert "hashlib" in modules and "hmac" in modules


def test_server_with_federation_loads_its_stack(tmp_path) -> None:
    modules = _modules_of_started_server(
        tmp_path, "--federation-listen", f"127.0.0.1:{free_port()}")
    assert set(FEDERATION_ONLY) <= modules and "ssl" in modules
    assert _within(modules, STREAM_ONLY + OPENSSL_HASHES) == []
