"""Where the idle homeserver's memory goes.

    python -m bench.memory_profile                 # SQLite, 3 repetitions
    python -m bench.memory_profile --databases sqlite,postgresql --reps 3

1. Idle RSS exactly as `make bench` measures it: a fresh server (the config
   `generate-config` writes, registration on, rate limits off, INFO logging),
   51 users registered with passwords (4 at a time), 2 s idle, then VmRSS,
   RssAnon, RssFile and the thread count from /proc/PID/status. Medians of
   `--reps` fresh servers.
2. The RSS of the imports alone, by top-level package. A child process runs
   the server's real start-up (`python -m homeserver run`, SQLite, stopped
   once its reactor runs) under `-X importtime`, which names each module as
   its import completes, dependencies first. A second fresh interpreter
   imports the modules the server held in that order and reads VmRSS after
   each: the growth is charged to the module's top-level package (its code,
   its tables, the shared libraries it maps). A package's `__init__` runs
   before its first submodule completes, so what an `__init__` pulls in from
   other packages is charged to it. The shares add up to the total.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import statistics
import subprocess
import sys
import tempfile

import aiohttp

from . import procstat, workloads
from .cs_load import IDLE_SETTLE_S, Postgres
from .guildhall_server import ROOT, GuildhallServer

USERS = 51  # 1 + max(senders, listeners, joiners) of the full `make bench`
STATUS_KEYS = ("VmRSS", "RssAnon", "RssFile", "RssShmem", "Threads")

# The interpreter flags the server runs with: it re-executes itself under them
# (homeserver/memory.py), so an in-process start must be given them.
SERVER_FLAGS = ("-OO",)

# `python -c` this with a config path: start the server for real, stop once
# its reactor runs, print its exit code and the modules it then holds (under
# `-X importtime` the trace also names failed imports). The reactor is not
# imported here: when it is is the server's choice. Also used by
# tests/integration/test_startup_imports.py.
RUN_THEN_LIST_MODULES = """
import json, sys, threading, time
from homeserver.__main__ import main

def stop_once_running():
    while True:
        time.sleep(0.05)
        reactor = sys.modules.get("twisted.internet.reactor")
        if reactor is not None and reactor.running:
            reactor.callFromThread(reactor.stop)
            return

threading.Thread(target=stop_once_running, daemon=True).start()
code = main(["run", "--config", sys.argv[1]])
print(json.dumps({"exit": code,
                  "modules": [name for name, module in sys.modules.items() if module is not None],
                  "absent": [name for name, module in sys.modules.items() if module is None]}))
"""

# Run in a fresh child: import the listed modules in order, VmRSS after each.
_IMPORT_STEPS = """
import importlib, json, sys

def rss_kib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])

listing = json.load(open(sys.argv[1]))
names = listing["modules"]
for absent in listing["absent"]:  # kept out as the server kept them (homeserver.memory)
    sys.modules[absent] = None
steps = [["(interpreter)", rss_kib()]]
for name in names:
    if name in sys.modules:
        continue
    try:
        importlib.import_module(name)
    except Exception:  # an alias or a module only importable through its parent
        continue
    steps.append([name, rss_kib()])
json.dump(steps, sys.stdout)
"""


def _status(pid: int) -> dict[str, float]:
    values: dict[str, float] = {}
    for key in STATUS_KEYS:
        kib = procstat.status_kib(pid, key)
        values[key] = kib if key == "Threads" else kib / 1024
    return values


async def _register(server: GuildhallServer) -> None:
    async with aiohttp.ClientSession() as session:
        api = workloads.Api(session, server.base_url)
        await workloads.register_users(api, "mem_", USERS, server.registration_needs_session)
        await asyncio.sleep(IDLE_SETTLE_S)


def idle_server(database_url: str | None) -> dict[str, float]:
    """One fresh server: start it, register the users, idle, read /proc."""
    from tests.harness import free_port

    server = GuildhallServer(port=free_port(), database_url=database_url,
                             server_name="guildhall.bench")
    try:
        server.start()
        started = _status(server.pid)
        asyncio.run(_register(server))
        idle = _status(server.pid)
        idle["startup_s"] = server.startup_seconds
        idle["VmRSS_at_start"] = started["VmRSS"]
        return idle
    finally:
        server.cleanup()


def server_modules() -> tuple[list[str], list[str]]:
    """The modules a started server imports, each after its dependencies, and
    those it keeps out (SQLite, no federation)."""
    with tempfile.TemporaryDirectory(prefix="memprof-") as tmp:
        subprocess.run([sys.executable, "-m", "homeserver", "generate-config",
                        "--server-name", "guildhall.bench", "--data-dir", tmp,
                        "--client-listen", "127.0.0.1:0", "--enable-registration",
                        "--disable-rate-limits"],
                       check=True, cwd=ROOT, capture_output=True, timeout=60)
        run = subprocess.run([sys.executable, *SERVER_FLAGS, "-X", "importtime",
                              "-c", RUN_THEN_LIST_MODULES,
                              f"{tmp}/homeserver.yaml"], check=True, cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
    result = json.loads(run.stdout.splitlines()[-1])
    held = set(result["modules"])
    names = [line.split("|")[-1].strip() for line in run.stderr.splitlines()
             if line.startswith("import time:")]
    return [name for name in dict.fromkeys(names) if name in held], result["absent"]


def _package(module: str) -> str:
    """The top-level package, C accelerators (`_sqlite3`) with their module."""
    return module.split(".")[0].lstrip("_") or module


def import_breakdown(modules: list[str], absent: list[str]) -> tuple[float, dict[str, float]]:
    """(interpreter MiB, {top-level package: MiB its imports added})."""
    with tempfile.NamedTemporaryFile("w", suffix=".json") as listing:
        json.dump({"modules": modules, "absent": absent}, listing)
        listing.flush()
        out = subprocess.run([sys.executable, *SERVER_FLAGS, "-c", _IMPORT_STEPS, listing.name],
                             check=True, cwd=ROOT, capture_output=True, text=True,
                             timeout=120).stdout
    steps = json.loads(out)
    shares: dict[str, float] = {}
    for (_, before), (name, after) in itertools.pairwise(steps):
        shares[_package(name)] = shares.get(_package(name), 0.0) + (after - before) / 1024
    return steps[0][1] / 1024, shares


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def _report_idle(label: str, runs: list[dict[str, float]]) -> None:
    median = _median(runs)
    print(f"\n## Idle server, {label} (median of {len(runs)})\n")
    print("| | " + " | ".join(f"#{i + 1}" for i in range(len(runs))) + " | median |")
    print("|---|" + "---|" * (len(runs) + 1))
    for key in ("VmRSS_at_start", *STATUS_KEYS, "startup_s"):
        unit = "" if key in ("Threads", "startup_s") else " MiB"
        cells = " | ".join(f"{run[key]:.1f}" for run in runs)
        print(f"| {key}{unit} | {cells} | {median[key]:.1f} |")


def _report_imports(modules: list[str], absent: list[str], top: int) -> None:
    base, shares = import_breakdown(modules, absent)
    total = sum(shares.values())
    print(f"\n## Imports at start-up: {len(modules)} modules, +{total:.1f} MiB over a bare "
          f"interpreter ({base:.1f} MiB)\n")
    print("| package | MiB | modules |")
    print("|---|---|---|")
    counts: dict[str, int] = {}
    for name in modules:
        counts[_package(name)] = counts.get(_package(name), 0) + 1
    ranked = sorted(shares.items(), key=lambda item: -item[1])
    for package, mib in ranked[:top]:
        print(f"| {package} | {mib:.1f} | {counts.get(package, 0)} |")
    rest = sum(mib for _, mib in ranked[top:])
    print(f"| (the other {max(0, len(ranked) - top)}) | {rest:.1f} | |")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.memory_profile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--databases", default="sqlite",
                        help="sqlite,postgresql; empty for the import breakdown only")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--top", type=int, default=25, help="packages listed by name")
    parser.add_argument("--no-imports", action="store_true", help="skip the import breakdown")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    for database in filter(None, args.databases.split(",")):
        postgres = Postgres().start() if database == "postgresql" else None
        try:
            runs = []
            for rep in range(max(1, args.reps)):
                url = postgres.create_database(f"memprof_{rep}") if postgres else None
                runs.append(idle_server(url))
            _report_idle(database, runs)
        finally:
            if postgres is not None:
                postgres.stop()
    if not args.no_imports:
        _report_imports(*server_modules(), args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
