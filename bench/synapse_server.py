"""Synapse under test: installed from PyPI into its own venv, configured for a load test.

`ensure_synapse` creates `.bench/synapse-venv` (once; reused while its stamp
matches the requested version). `SynapseServer` writes a homeserver.yaml with
a plain-HTTP client listener on loopback, open registration, rate limits
effectively off and no federation key servers, generates the signing key
with `--generate-keys`, and runs `python -m synapse.app.homeserver`.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from .server_process import ServerError, ServerProcess

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_VENV = ROOT / ".bench" / "synapse-venv"
DEFAULT_VERSION = "1.163.2"
INSTALL_TIMEOUT_S = 900
STAMP = ".bench-installed"

# Every client-facing rate limit Synapse has, set far above what the load reaches.
_UNLIMITED = {"per_second": 100000, "burst_count": 100000}
RATE_LIMITS = {
    "rc_message": _UNLIMITED,
    "rc_registration": _UNLIMITED,
    "rc_registration_token_validity": _UNLIMITED,
    "rc_login": {"address": _UNLIMITED, "account": _UNLIMITED, "failed_attempts": _UNLIMITED},
    "rc_admin_redaction": _UNLIMITED,
    "rc_joins": {"local": _UNLIMITED, "remote": _UNLIMITED},
    "rc_joins_per_room": _UNLIMITED,
    "rc_3pid_validation": _UNLIMITED,
    "rc_invites": {"per_room": _UNLIMITED, "per_user": _UNLIMITED, "per_issuer": _UNLIMITED},
    "rc_third_party_invite": _UNLIMITED,
    "rc_media_create": _UNLIMITED,
    "rc_presence": {"per_user": _UNLIMITED},
    "rc_delayed_event_mgmt": _UNLIMITED,
    "rc_reports": _UNLIMITED,
    "rc_room_creation": _UNLIMITED,
    "rc_user_directory": _UNLIMITED,
}


def _requirements(version: str) -> list[str]:
    synapse = f"matrix-synapse=={version}" if version else "matrix-synapse"
    # Synapse's `postgres` extra builds psycopg2 from source; the binary wheel
    # provides the same `psycopg2` module without a compiler or libpq headers.
    return [synapse, "psycopg2-binary"]


def ensure_synapse(venv: Path = DEFAULT_VENV, version: str = DEFAULT_VERSION) -> Path:
    """Install Synapse into `venv` unless already there; return the venv's python."""
    python = venv / "bin" / "python"
    stamp = venv / STAMP
    wanted = " ".join(_requirements(version))
    if python.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        check = subprocess.run([str(python), "-c", "import synapse, psycopg2"],
                               capture_output=True, timeout=120)
        if check.returncode == 0:
            return python
    logger.info("installing %s into %s (about a minute)", wanted, venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True,
                       timeout=INSTALL_TIMEOUT_S)
    result = subprocess.run([str(python), "-m", "pip", "install", "--quiet",
                             *_requirements(version)],
                            capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
    if result.returncode != 0:
        raise ServerError(f"pip install of Synapse failed:\n{result.stdout[-3000:]}"
                          f"{result.stderr[-3000:]}")
    stamp.write_text(wanted + "\n")
    return python


def _database_section(url: str | None, data_dir: Path) -> dict[str, object]:
    if not url:
        return {"name": "sqlite3", "args": {"database": str(data_dir / "homeserver.db")}}
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ServerError(f"unsupported database URL for Synapse: {url}")
    args: dict[str, object] = {
        "user": parts.username or "postgres",
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 5432,
        "database": parts.path.lstrip("/"),
        "cp_min": 5,
        "cp_max": 10,
    }
    if parts.password:
        args["password"] = parts.password
    return {"name": "psycopg2", "args": args}


def synapse_log_config(path: Path, level: str) -> dict[str, object]:
    """Synapse's logging: everything at `level` and above to one file."""
    return {
        "version": 1,
        "formatters": {"precise": {
            "format": "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(message)s"}},
        "handlers": {"file": {"class": "logging.FileHandler", "formatter": "precise",
                              "filename": str(path), "encoding": "utf8"}},
        "root": {"level": level, "handlers": ["file"]},
        "disable_existing_loggers": False,
    }


class SynapseServer(ServerProcess):
    product = "synapse"
    registration_needs_session = True

    def __init__(self, *, python: Path, room_version: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.python = python
        self.room_version = room_version

    def config(self) -> dict[str, object]:
        d = self.dir
        return {
            "server_name": self.server_name,
            "pid_file": str(d / "homeserver.pid"),
            "listeners": [{
                "port": self.port, "bind_addresses": [self.host], "type": "http",
                "tls": False, "x_forwarded": False,
                "resources": [{"names": ["client"], "compress": False}],
            }],
            "database": _database_section(self.database_url, d),
            "log_config": str(d / "log.config"),
            "media_store_path": str(d / "media_store"),
            "signing_key_path": str(d / "signing.key"),
            "enable_registration": True,
            "enable_registration_without_verification": True,
            "report_stats": False,
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "macaroon_secret_key": secrets.token_urlsafe(32),
            "form_secret": secrets.token_urlsafe(32),
            "registration_shared_secret": secrets.token_urlsafe(32),
            "default_room_version": self.room_version,
            **RATE_LIMITS,
        }

    def _configure(self) -> None:
        config_path = self.dir / "homeserver.yaml"
        (self.dir / "log.config").write_text(yaml.safe_dump(
            synapse_log_config(self.dir / "homeserver.log", self.log_level)))
        config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        result = subprocess.run([str(self.python), "-m", "synapse.app.homeserver",
                                 "-c", str(config_path), "--generate-keys"],
                                capture_output=True, text=True, timeout=120, cwd=self.dir)
        if result.returncode != 0:
            raise ServerError(f"synapse --generate-keys failed:\n{result.stderr[-3000:]}")

    def _command(self) -> list[str]:
        return [str(self.python), "-m", "synapse.app.homeserver",
                "-c", str(self.dir / "homeserver.yaml")]

    def _cwd(self) -> Path:
        return self.dir

    def log_files(self) -> list[Path]:
        return [self.log_path, self.dir / "homeserver.log"]

    def log_tail(self, chars: int = 4000) -> str:
        text = super().log_tail(chars)
        with contextlib.suppress(OSError):
            text += (self.dir / "homeserver.log").read_text(errors="replace")[-chars:]
        return text

    def version(self) -> str:
        return synapse_version(self.python)


def synapse_version(python: Path) -> str:
    """The installed matrix-synapse distribution's version (without git details)."""
    code = "import importlib.metadata as m; print(m.version('matrix-synapse'))"
    result = subprocess.run([str(python), "-c", code], capture_output=True, text=True,
                            timeout=60)
    return result.stdout.strip() or "unknown"
