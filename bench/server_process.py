"""A homeserver under test: one OS process on loopback, started and stopped by us.

Subclasses (`GuildhallServer`, `SynapseServer`) write the configuration and
say which command runs the server; this class starts it, waits until
`/_matrix/client/versions` answers, reads its CPU and memory from /proc, and
stops it (SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import logging
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from . import procstat

logger = logging.getLogger(__name__)

START_TIMEOUT_S = 60.0
STOP_GRACE_S = 15.0


class ServerError(RuntimeError):
    pass


class ServerProcess:
    """Base class; subclasses set `product` and implement `_configure` and `_command`."""

    product = "server"
    # Synapse's dummy registration flow starts with a POST that opens a session.
    registration_needs_session = False

    def __init__(self, *, port: int, database_url: str | None, server_name: str,
                 host: str = "127.0.0.1", log_level: str = "INFO") -> None:
        self.host = host
        self.port = port
        self.server_name = server_name
        self.database_url = database_url
        self.log_level = log_level
        self.dir = Path(tempfile.mkdtemp(prefix=f"bench-{self.product}-"))
        self.log_path = self.dir / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.startup_seconds = 0.0
        self._final_cpu: float | None = None
        self._final_peak_rss: float | None = None

    # -- to override ---------------------------------------------------------
    def _configure(self) -> None:
        raise NotImplementedError

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _cwd(self) -> Path | None:
        return None

    def version(self) -> str:
        return "?"

    # -- lifecycle -----------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise ServerError(f"{self.product} is not running")
        return self.process.pid

    def start(self) -> ServerProcess:
        self._configure()
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.started_at = time.monotonic()
        try:
            self.process = subprocess.Popen(self._command(), cwd=self._cwd(), stdout=log,
                                            stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)
        finally:
            log.close()
        deadline = self.started_at + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerError(f"{self.product} exited early ({self.process.returncode}):\n"
                                  f"{self.log_tail()}")
            if self._answers():
                self.startup_seconds = time.monotonic() - self.started_at
                logger.info("%s up on %s in %.1f s (pid %d)", self.product, self.base_url,
                            self.startup_seconds, self.process.pid)
                return self
            time.sleep(0.1)
        self.stop()
        raise ServerError(f"{self.product} did not answer within {START_TIMEOUT_S:.0f} s:\n"
                          f"{self.log_tail()}")

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/_matrix/client/versions",
                                        timeout=2) as response:
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def cpu_seconds(self) -> float:
        """CPU seconds (user+system, all threads) used by the server so far."""
        if self.process is None or self.process.poll() is not None:
            if self._final_cpu is not None:
                return self._final_cpu
            raise ServerError(f"{self.product} is not running")
        return procstat.cpu_seconds(self.process.pid, include_children=True)

    def rss_mib(self) -> float:
        return procstat.rss_mib(self.pid)

    def peak_rss_mib(self) -> float:
        if self._final_peak_rss is not None and self.process is None:
            return self._final_peak_rss
        return procstat.peak_rss_mib(self.pid)

    def stop(self) -> int | None:
        """SIGTERM, wait, then SIGKILL. Records final CPU and peak RSS first."""
        if self.process is None:
            return None
        process, self.process = self.process, None
        if process.poll() is None:
            try:
                self._final_cpu = procstat.cpu_seconds(process.pid, include_children=True)
                self._final_peak_rss = procstat.peak_rss_mib(process.pid)
            except (OSError, ValueError, KeyError):
                pass
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                logger.warning("%s ignored SIGTERM for %.0f s; killing it", self.product,
                               STOP_GRACE_S)
                process.kill()
                process.wait(10)
        return process.returncode

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def log_files(self) -> list[Path]:
        return [self.log_path]

    def cleanup(self, keep_dir: Path | None = None) -> None:
        """Stop the server and remove its directory (copying its logs to `keep_dir` first)."""
        self.stop()
        if keep_dir is not None:
            keep_dir.mkdir(parents=True, exist_ok=True)
            for path in self.log_files():
                if path.exists():
                    shutil.copy(path, keep_dir / f"{self.dir.name}-{path.name}")
        shutil.rmtree(self.dir, ignore_errors=True)
