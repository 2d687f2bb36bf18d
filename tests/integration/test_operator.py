"""What an operator runs: generate-config, register-user, run, SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import yaml

from tests.harness import ROOT, HomeserverProcess, http_json


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "homeserver", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_generate_config_writes_safe_commented_defaults(tmp_path) -> None:
    result = _cli("generate-config", "--server-name", "127.0.0.2:8448", "--data-dir",
                  str(tmp_path))
    assert result.returncode == 0, result.stderr
    path = tmp_path / "homeserver.yaml"
    text = path.read_text()
    config = yaml.safe_load(text)
    assert config["server_name"] == "127.0.0.2:8448"
    assert config["enable_registration"] is False  # safe default
    assert config["rate_limits"]["enabled"] is True
    assert config["signing_key"].startswith("ed25519 a_")
    assert text.count("\n# ") >= 10  # every option is explained
    assert oct(path.stat().st_mode & 0o777) == "0o600"  # the key is secret


def test_generate_config_rejects_invalid_server_name(tmp_path) -> None:
    result = _cli("generate-config", "--server-name", "bad name", "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert "invalid server name" in result.stderr


def test_register_user_from_shell_then_login_and_sigterm() -> None:
    server = HomeserverProcess()
    try:
        result = _cli("register-user", "--config", str(server.config_path), "root",
                      "--password", "s3cret", "--admin")
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "@root:localhost"
        server.start()
        # `python -m homeserver run` re-executed itself under -OO in the same process,
        # which SIGTERM below still stops cleanly.
        cmdline = open(f"/proc/{server.process.pid}/cmdline", "rb").read().split(b"\0")
        assert b"-OO" in cmdline and cmdline[-5:-1] == [
            b"homeserver", b"run", b"--config", str(server.config_path).encode()]
        status, body = http_json("POST", f"{server.base_url}/_matrix/client/v3/login", {
            "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "root"},
            "password": "s3cret"})
        assert status == 200 and body["user_id"] == "@root:localhost"
        status, body = http_json("POST", f"{server.base_url}/_matrix/client/v3/login", {
            "type": "m.login.password", "user": "root", "password": "wrong"})
        assert status == 403 and body["errcode"] == "M_FORBIDDEN"
        started = time.monotonic()
        code = server.stop(signal.SIGTERM)
        assert code == 0, server.log()
        assert time.monotonic() - started < 10
        assert "Traceback" not in server.log()
    finally:
        server.cleanup()
