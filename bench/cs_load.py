"""Client-Server load benchmark: Guildhall vs Synapse, same machine, same run.

    python -m bench.cs_load            # full sizes (make bench); under 15 minutes on 2 cores
    python -m bench.cs_load --quick    # tiny sizes: a smoke test of the whole pipeline

For each database (SQLite, then PostgreSQL) each server is started fresh, its
users are registered, and the same workloads run against it: send throughput,
/sync fan-out latency (also with the listeners sending read receipts), a join
storm and /messages paging; CPU and memory of
the server process come from /proc. The report (markdown and JSON) goes to
bench/results/cs_load-<date>.md|json, and the markdown is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from . import procstat, report, workloads
from .guildhall_server import GuildhallServer, guildhall_version
from .server_process import ServerProcess
from .synapse_server import (
    DEFAULT_VENV,
    DEFAULT_VERSION,
    SynapseServer,
    ensure_synapse,
    synapse_version,
)

logger = logging.getLogger("bench.cs_load")

RESULTS_DIR = Path(__file__).resolve().parent / "results"
WORKLOAD_TIMEOUT_S = 300.0
IDLE_SETTLE_S = 2.0

FULL = {"reps": 3, "send_messages": 1000, "senders": 20, "listeners": 50,
        "fanout_messages": 30, "joiners": 50, "paging_messages": 1000, "page_limit": 50}
QUICK = {"reps": 2, "send_messages": 60, "senders": 5, "listeners": 5,
         "fanout_messages": 4, "joiners": 8, "paging_messages": 60, "page_limit": 20}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.cs_load", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    for key, value in FULL.items():
        parser.add_argument(f"--{key.replace('_', '-')}", type=int, default=None,
                            help=f"default {value} (quick: {QUICK[key]})")
    parser.add_argument("--servers", default="guildhall,synapse")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--room-version", default="12")
    parser.add_argument("--log-level", default="INFO", help="both servers' log level")
    parser.add_argument("--synapse-version", default=DEFAULT_VERSION,
                        help="PyPI version ('' for the newest)")
    parser.add_argument("--synapse-venv", type=Path, default=DEFAULT_VENV)
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--max-minutes", type=float, default=14.0,
                        help="stop starting new repetitions after this long")
    parser.add_argument("--keep-logs", type=Path, default=None,
                        help="copy server logs into this folder before cleaning up")
    parser.add_argument("--note", default="", help="a line for the top of the report")
    return parser


def _sizes(args: argparse.Namespace) -> dict[str, int]:
    base = QUICK if args.quick else FULL
    return {key: getattr(args, key) if getattr(args, key) is not None else base[key]
            for key in FULL}


# -- environment -------------------------------------------------------------------

def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _postgres_version() -> str:
    from tests.harness import _pg_bin

    binary = _pg_bin("postgres")
    if not binary:
        return "n/a"
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
    return out.stdout.strip().removeprefix("postgres (PostgreSQL) ") or "unknown"


# -- PostgreSQL ----------------------------------------------------------------------

class Postgres:
    """The harness's throwaway cluster, plus C-collated databases and a CPU probe."""

    def __init__(self) -> None:
        from tests.harness import PostgresCluster

        ok, reason = PostgresCluster.available()
        if not ok:
            raise RuntimeError(reason)
        self.cluster = PostgresCluster()

    def start(self) -> Postgres:
        self.cluster.start()
        logger.info("PostgreSQL cluster in %s on port %d", self.cluster.dir, self.cluster.port)
        return self

    def create_database(self, name: str) -> str:
        import psycopg

        url = f"postgresql://postgres@127.0.0.1:{self.cluster.port}"
        with psycopg.connect(f"{url}/postgres", autocommit=True) as conn:
            # Synapse requires C collation; Guildhall gets the same for a like comparison.
            conn.execute(f"CREATE DATABASE \"{name}\" ENCODING 'UTF8' LC_COLLATE='C' "
                         "LC_CTYPE='C' TEMPLATE template0")
        return f"{url}/{name}"

    def postmaster_pid(self) -> int:
        return int((self.cluster.dir / "data" / "postmaster.pid").read_text().split()[0])

    def cpu_seconds(self) -> float:
        return procstat.tree_cpu_seconds(self.postmaster_pid())

    def stop(self) -> None:
        self.cluster.stop()


# -- one server on one database -------------------------------------------------------

class Budget:
    """A deadline for the whole run, shared out evenly among the runs still to come."""

    def __init__(self, minutes: float, runs: int) -> None:
        self.deadline = time.monotonic() + minutes * 60
        self.runs_left = max(runs, 1)
        self.run_deadline = self.deadline

    def next_run(self) -> None:
        now = time.monotonic()
        self.run_deadline = now + max(self.deadline - now, 0) / self.runs_left
        self.runs_left = max(self.runs_left - 1, 1)

    def exhausted(self, first: bool = False) -> bool:
        """Past this run's share; a workload's first repetition only stops at the deadline."""
        return time.monotonic() > (self.deadline if first else self.run_deadline)


async def _timed(label: str, failures: list[str], coro: Any) -> Any:
    try:
        return await asyncio.wait_for(coro, WORKLOAD_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - a failed workload is reported, not fatal
        logger.warning("%s failed: %s", label, exc)
        failures.append(f"{label}: {type(exc).__name__}: {exc}"[:500])
        return None


def _correctness(label: str, result: dict[str, float]) -> list[str]:
    """Counts that must be zero: errors, missed deliveries, missing members or messages."""
    return [f"{label}: {key} = {result[key]:.0f}"
            for key in ("errors", "missed", "members_missing", "messages_missing")
            if result.get(key)]


async def drive(server: ServerProcess, probe: workloads.Probe, sizes: dict[str, int],
                room_version: str, budget: Budget) -> dict[str, Any]:
    """Registers the users, then runs every workload `reps` times against `server`."""
    run: dict[str, Any] = {"failures": [], "notes": []}
    failures: list[str] = run["failures"]
    pool_size = max(sizes["senders"], sizes["listeners"], sizes["joiners"])
    connector = aiohttp.TCPConnector(limit=pool_size * 2 + 20)
    async with aiohttp.ClientSession(connector=connector) as session:
        api = workloads.Api(session, server.base_url)
        tag = uuid.uuid4().hex[:6]
        users, reg_seconds = await workloads.register_users(
            api, f"bench{tag}_", pool_size + 1, server.registration_needs_session)
        creator, pool = users[0], users[1:]
        await asyncio.sleep(IDLE_SETTLE_S)
        run["resources"] = {
            "startup_s": server.startup_seconds,
            "registration_users_per_s": len(users) / reg_seconds,
            "idle_rss_mib": server.rss_mib(),
        }
        logger.info("%s: %d users registered in %.1f s; idle RSS %.0f MiB", server.product,
                    len(users), reg_seconds, run["resources"]["idle_rss_mib"])
        reps = sizes["reps"]

        def repeat(name: str, make: Callable[[], Any]) -> Any:
            async def go() -> None:
                run[name] = {"reps": []}
                for rep in range(reps):
                    if budget.exhausted(first=rep == 0):
                        run["notes"].append(f"{name}: repetitions {rep + 1}-{reps} skipped "
                                            "(time budget)")
                        return
                    result = await _timed(f"{name} #{rep + 1}", failures, make())
                    if result is not None:
                        run[name]["reps"].append(result)
                        failures.extend(_correctness(f"{name} #{rep + 1}", result))
                        logger.info("%s %s #%d: %s", server.product, name, rep + 1,
                                    {k: round(v, 2) for k, v in result.items()})
            return go()

        await repeat("send", lambda: workloads.send_throughput(
            api, probe, creator, pool[:sizes["senders"]], sizes["send_messages"], room_version))
        await repeat("fanout", lambda: workloads.fanout_latency(
            api, probe, creator, pool[:sizes["listeners"]], sizes["fanout_messages"],
            room_version))
        await repeat("fanout_receipts", lambda: workloads.fanout_latency(
            api, probe, creator, pool[:sizes["listeners"]], sizes["fanout_messages"],
            room_version, read_receipts=True))
        await repeat("join", lambda: workloads.join_storm(
            api, probe, creator, pool[:sizes["joiners"]], room_version))
        room_id = await _timed("paging (filling the room)", failures,
                               workloads.prepare_paging_room(
                                   api, creator, pool[:sizes["senders"]],
                                   sizes["paging_messages"], room_version))
        if room_id is not None:
            await repeat("paging", lambda: workloads.page_backwards(
                api, probe, pool[0], room_id, sizes["paging_messages"], sizes["page_limit"]))
    return run


def run_one(product: str, database: str, args: argparse.Namespace, sizes: dict[str, int],
            postgres: Postgres | None, synapse_python: Path | None, budget: Budget
            ) -> dict[str, Any]:
    from tests.harness import free_port

    db_url = None
    if database == "postgresql":
        assert postgres is not None
        db_url = postgres.create_database(f"bench_{product}_{uuid.uuid4().hex[:8]}")
    common: dict[str, Any] = {"port": free_port(), "database_url": db_url,
                              "server_name": f"{product}.bench", "log_level": args.log_level}
    server: ServerProcess
    if product == "synapse":
        assert synapse_python is not None
        server = SynapseServer(python=synapse_python, room_version=args.room_version, **common)
    else:
        server = GuildhallServer(**common)
    logger.info("=== %s on %s ===", product, database)
    budget.next_run()
    try:
        server.start()
        probe = workloads.Probe(server.cpu_seconds,
                                postgres.cpu_seconds if postgres and db_url else None)
        run = asyncio.run(drive(server, probe, sizes, args.room_version, budget))
        server.stop()
        run["resources"]["total_cpu_s"] = server.cpu_seconds()
        run["resources"]["peak_rss_mib"] = server.peak_rss_mib()
        return run
    except Exception as exc:  # noqa: BLE001 - one broken server must not end the run
        logger.error("%s on %s failed: %s\n%s", product, database, exc, server.log_tail(2000))
        return {"failures": [f"run aborted: {type(exc).__name__}: {str(exc)[:400]}"]}
    finally:
        server.cleanup(args.keep_logs)


# -- main -----------------------------------------------------------------------------

def _on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt as exc:
        logger.error("interrupted (%s); servers and PostgreSQL were stopped", exc or "Ctrl-C")
        return 130


def _main(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                        datefmt="%H:%M:%S")
    signal.signal(signal.SIGTERM, _on_sigterm)
    sizes = _sizes(args)
    products = [p for p in args.servers.split(",") if p]
    databases = [d for d in args.databases.split(",") if d]
    budget = Budget(args.max_minutes, len(products) * len(databases))
    started = datetime.now(UTC)
    environment: dict[str, Any] = {
        "cpu_count": os.cpu_count(), "cpu_model": _cpu_model(),
        "python": platform.python_version(), "platform": platform.platform(),
        "loadavg_start": _loadavg(), "guildhall_version": guildhall_version(),
        "synapse_version": "not run", "aiohttp": aiohttp.__version__,
    }
    synapse_python = None
    if "synapse" in products:
        synapse_python = ensure_synapse(args.synapse_venv, args.synapse_version)
        environment["synapse_version"] = synapse_version(synapse_python)
    postgres: Postgres | None = None
    runs: dict[str, dict[str, Any]] = {}
    try:
        for database in databases:
            if database == "postgresql":
                try:
                    postgres = Postgres().start()
                    environment["postgresql"] = _postgres_version()
                except Exception as exc:  # noqa: BLE001
                    logger.error("PostgreSQL unavailable, skipping it: %s", exc)
                    runs[database] = {p: {"failures": [f"PostgreSQL unavailable: {exc}"]}
                                      for p in products}
                    continue
            runs[database] = {product: run_one(product, database, args, sizes, postgres,
                                               synapse_python, budget)
                              for product in products}
            if postgres is not None:
                postgres.stop()
                postgres = None
    finally:
        if postgres is not None:
            postgres.stop()
    environment["loadavg_end"] = _loadavg()
    results = {
        "benchmark": "cs_load", "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "duration_s": round((datetime.now(UTC) - started).total_seconds(), 1),
        "note": args.note, "environment": environment,
        "parameters": {**sizes, "room_version": args.room_version,
                       "log_level": args.log_level, "quick": args.quick},
        "runs": runs,
    }
    full = report.build(results)
    stem = f"cs_load-{started.strftime('%Y-%m-%d-%H%M')}{'-quick' if args.quick else ''}"
    md_path, json_path = report.write(full, args.results_dir, stem)
    print(report.markdown(full))
    print(f"written: {md_path} and {json_path} ({full['duration_s']:.0f} s)")
    failed = any(run.get("failures") for per_db in runs.values() for run in per_db.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
