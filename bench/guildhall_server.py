"""Guildhall under test: `python -m homeserver generate-config` then `run`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from .server_process import ServerProcess

ROOT = Path(__file__).resolve().parent.parent


class GuildhallServer(ServerProcess):
    product = "guildhall"

    def _cwd(self) -> Path:
        return ROOT

    def _configure(self) -> None:
        args = [sys.executable, "-m", "homeserver", "generate-config",
                "--server-name", self.server_name, "--data-dir", str(self.dir),
                "--client-listen", f"{self.host}:{self.port}",
                "--enable-registration", "--disable-rate-limits"]
        if self.database_url:
            args += ["--database", self.database_url]
        subprocess.run(args, check=True, cwd=ROOT, capture_output=True, timeout=60)
        if self.log_level != "INFO":
            path = self.dir / "homeserver.yaml"
            config = yaml.safe_load(path.read_text())
            config["log_level"] = self.log_level
            path.write_text(yaml.safe_dump(config))

    def _command(self) -> list[str]:
        return [sys.executable, "-m", "homeserver", "run",
                "--config", str(self.dir / "homeserver.yaml")]

    def version(self) -> str:
        return guildhall_version()


def guildhall_version() -> str:
    """The commit of this work tree, marked when the server's code has local changes."""
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain",
                                "--untracked-files=all", "--", "homeserver", "federation"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"git {head or '?'}{' + uncommitted changes' if dirty else ''}"
