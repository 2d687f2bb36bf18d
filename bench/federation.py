"""Federation benchmark: Guildhall and Synapse servers federating over TLS on loopback.

    python -m bench.federation            # full sizes (make bench-federation)
    python -m bench.federation --quick    # tiny sizes: a smoke test of the whole pipeline

Servers are separate processes, each on its own 127.0.9.x address, trusting one
throwaway test CA (the federation test beds of tests/federation/). Measured:
  1. delivery latency, for each path (Guildhall->Guildhall, Guildhall->Synapse,
     Synapse->Guildhall, Synapse->Synapse): a user on the first server sends
     messages one at a time; a user on the second long-polls /sync; latency is
     from the start of the send request to the /sync response holding it;
  2. remote join of a big room (500 members, 2,000 state events): a user on a
     fresh server joins it with `via`; timed until `POST /join` returns and until
     /sync lists the room as joined, for each joiner/holder pair.
The report goes to bench/results/federation-<YYYYMMDD-HHMM>.md|json and is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import os
import platform
import re
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from tests.federation.certs import TestCA
from tests.federation.cluster import FederatedServer
from tests.federation.synapse import SynapsePeer

from . import federation_report, procstat
from . import federation_workloads as fw
from .cs_load import _cpu_model, _loadavg
from .guildhall_server import guildhall_version
from .synapse_server import DEFAULT_VENV, DEFAULT_VERSION, ensure_synapse, synapse_version
from .workloads import Api, User, register

logger = logging.getLogger("bench.federation")

RESULTS_DIR = Path(__file__).resolve().parent / "results"
# A block of loopback addresses no test bed uses (tests draw from 127.0.0.2-241).
ADDRESS_PREFIX = "127.0.9."

FULL = {"messages": 200, "delivery_reps": 3, "members": 500, "state_events": 2000,
        "join_reps": 3}
QUICK = {"messages": 20, "delivery_reps": 1, "members": 30, "state_events": 120,
         "join_reps": 1}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.federation", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    for key, value in FULL.items():
        parser.add_argument(f"--{key.replace('_', '-')}", type=int, default=None,
                            help=f"default {value} (quick: {QUICK[key]})")
    parser.add_argument("--skip", default="", help="comma-separated: delivery, joins")
    parser.add_argument("--paths", default="",
                        help="only these comma-separated paths, e.g. guildhall->guildhall "
                             "(delivery: sender->receiver; joins: joiner->room holder)")
    parser.add_argument("--room-version", default="12")
    parser.add_argument("--synapse-version", default=DEFAULT_VERSION)
    parser.add_argument("--synapse-venv", type=Path, default=DEFAULT_VENV)
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--keep-logs", type=Path, default=None,
                        help="copy every server's log into this folder before cleaning up")
    parser.add_argument("--note", default="", help="a line for the top of the report")
    return parser


def _sizes(args: argparse.Namespace) -> dict[str, int]:
    base = QUICK if args.quick else FULL
    return {key: getattr(args, key) if getattr(args, key) is not None else base[key]
            for key in FULL}


# -- the servers -------------------------------------------------------------------

@dataclass
class Peer:
    """A started server (ours: tests.federation.cluster.FederatedServer; Synapse:
    tests.federation.synapse.SynapsePeer) and a client API caller for it."""

    product: str
    label: str
    server: Any
    api: Api

    @property
    def server_name(self) -> str:
        return str(self.server.server_name)

    def cpu_seconds(self) -> float:
        process = self.server.process
        return procstat.cpu_seconds(process.pid, include_children=True) if process else 0.0

    async def register(self, localpart: str) -> User:
        return await register(self.api, localpart, "bench-" + uuid.uuid4().hex,
                              needs_session=self.product == "synapse")

    def log_paths(self) -> list[Path]:
        if self.product == "synapse":
            return [self.server.log_path, self.server.dir / "stdout.log"]
        return [self.server.log_path]


@dataclass
class TestBed:
    """The CA, the Synapse venv and every server started, for cleanup at the end."""

    session: aiohttp.ClientSession
    synapse_python: Path | None
    room_version: str
    keep_logs: Path | None
    paths: set[str]
    ca: TestCA = field(init=False)
    peers: list[Peer] = field(default_factory=list)
    _hosts: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.ca = TestCA(Path(tempfile.mkdtemp(prefix="bench-federation-ca-")))

    def _make(self, product: str) -> Any:
        ip = f"{ADDRESS_PREFIX}{next(self._hosts)}"
        if product == "synapse":
            assert self.synapse_python is not None, "Synapse is not installed"
            return BenchSynapse(self.ca, self.synapse_python, ip=ip,
                                room_version=self.room_version)
        return FederatedServer(self.ca, ip=ip)

    async def start(self, product: str, label: str) -> Peer:
        server = self._make(product)
        peer = Peer(product, label, server, Api(self.session, server.base_url))
        self.peers.append(peer)
        started = time.perf_counter()
        await asyncio.to_thread(server.start)
        logger.info("%s (%s) up as %s in %.1f s", label, product, server.server_name,
                    time.perf_counter() - started)
        return peer

    async def stop(self, peer: Peer) -> None:
        self.peers.remove(peer)
        await asyncio.to_thread(self._cleanup, peer)

    def _cleanup(self, peer: Peer) -> None:
        peer.server.stop()
        if self.keep_logs is not None:
            self.keep_logs.mkdir(parents=True, exist_ok=True)
            for path in peer.log_paths():
                if path.exists():
                    target = self.keep_logs / f"{peer.label}-{peer.product}-{path.name}"
                    target.write_bytes(path.read_bytes())
        peer.server.cleanup()

    async def stop_all(self) -> None:
        for peer in list(self.peers):
            await self.stop(peer)

    async def close(self) -> None:
        await self.stop_all()
        shutil.rmtree(self.ca.directory, ignore_errors=True)


# Synapse delays a server's federation requests past 10 a second (500 ms each): off here,
# as the client-side limits are, so the delivery loop measures latency, not a throttle.
FEDERATION_UNLIMITED = {"window_size": 1000, "sleep_limit": 100000, "sleep_delay": 1,
                        "reject_limit": 100000, "concurrent": 100000}


class BenchSynapse(SynapsePeer):
    """The test-bed Synapse, with cheap password hashing (only the set-up registers users)
    and no limit on incoming federation requests."""

    def config(self) -> dict[str, Any]:
        return {**super().config(), "bcrypt_rounds": 4, "rc_federation": FEDERATION_UNLIMITED}


def _selected(paths: list[tuple[str, str]], wanted: set[str]) -> list[tuple[str, str]]:
    return [path for path in paths if not wanted or "->".join(path) in wanted]


# -- 1. delivery -----------------------------------------------------------------------

DELIVERY_PATHS = [("guildhall", "guildhall"), ("guildhall", "synapse"),
                  ("synapse", "guildhall"), ("synapse", "synapse")]
# The servers at each path's ends: two of each product, so that no path loops back.
DELIVERY_ENDS = {("guildhall", "guildhall"): ("G1", "G2"), ("guildhall", "synapse"): ("G1", "S1"),
                 ("synapse", "guildhall"): ("S1", "G1"), ("synapse", "synapse"): ("S1", "S2")}
PRODUCT_OF_LABEL = {"G": "guildhall", "S": "synapse"}


async def run_delivery(bed: TestBed, sizes: dict[str, int], results: dict[str, Any]) -> None:
    """Starts the servers the selected paths need, then runs every path `delivery_reps`
    times, interleaved, so that slow drifts of the machine's load hit every path alike."""
    paths = _selected(DELIVERY_PATHS, bed.paths)
    labels = sorted({label for path in paths for label in DELIVERY_ENDS[path]})
    peers = dict(zip(labels, await asyncio.gather(
        *(bed.start(PRODUCT_OF_LABEL[label[0]], label) for label in labels)), strict=True))
    users = dict(zip(labels, await asyncio.gather(
        *(peers[label].register(f"fed{label.lower()}") for label in labels)), strict=True))
    for rep in range(sizes["delivery_reps"]):
        for path in paths:
            sender, receiver = (peers[label] for label in DELIVERY_ENDS[path])
            key = f"{path[0]}->{path[1]}"
            entry = results.setdefault(key, {"reps": [], "failures": [],
                                             "servers": f"{sender.label} -> {receiver.label}"})
            try:
                room_id = await fw.prepare_pair(sender.api, users[sender.label], receiver.api,
                                                users[receiver.label], sender.server_name,
                                                bed.room_version)
                result = await fw.delivery_latency(
                    sender.api, users[sender.label], receiver.api, users[receiver.label],
                    room_id, sizes["messages"],
                    cpu=lambda s=sender, r=receiver: (s.cpu_seconds(), r.cpu_seconds()))
            except Exception as exc:  # noqa: BLE001 - one broken path must not end the run
                logger.warning("delivery %s #%d failed: %s", key, rep + 1, exc)
                entry["failures"].append(f"#{rep + 1}: {type(exc).__name__}: {exc}"[:400])
                continue
            entry["reps"].append(result)
            logger.info("delivery %s #%d: %s", key, rep + 1,
                        {k: round(v, 1) for k, v in result.items()})
    for peer in peers.values():
        await bed.stop(peer)


# -- 2. joins --------------------------------------------------------------------------

JOIN_PATHS = [("guildhall", "guildhall"), ("synapse", "guildhall"),
              ("guildhall", "synapse"), ("synapse", "synapse")]


async def _big_room(bed: TestBed, product: str, sizes: dict[str, int]
                    ) -> tuple[Peer, User, dict[str, Any]]:
    holder = await bed.start(product, f"H{product[0].upper()}")
    started = time.perf_counter()
    creator = await holder.register("holder")
    members = await fw.register_many(holder.api, "member", sizes["members"] - 1,
                                     needs_session=product == "synapse")
    registered = time.perf_counter() - started
    room = await fw.build_big_room(holder.api, creator, members, sizes["state_events"],
                                   bed.room_version)
    room["register_s"] = registered
    logger.info("big room on %s: %s", holder.label, room)
    return holder, creator, room


def _partial_state_join(peer: Peer, room_id: str) -> bool:
    """Synapse logs the start and the end of a partial-state ("faster join") resync."""
    if peer.product != "synapse":
        return False
    pattern = rf"(Syncing state for room|Clearing partial-state flag for) {re.escape(room_id)}"
    return re.search(pattern, peer.server.log()) is not None


async def _one_join(bed: TestBed, joiner_product: str, holder: Peer, holder_user: User,
                    room_id: str, rep: int) -> tuple[Peer, dict[str, float]]:
    """A fresh server joins the room, then leaves it. It is not stopped: the room now holds
    its signed events, which later joiners must verify with its key."""
    joiner = await bed.start(joiner_product, f"J{joiner_product[0].upper()}{rep + 1}"
                                             f"-{holder.label}")
    user = await joiner.register("joiner")
    result = await fw.remote_join(joiner.api, user, room_id, holder.server_name)
    result["partial_state_join"] = float(_partial_state_join(joiner, room_id))
    if await fw.leave(joiner.api, user, room_id):
        # Gone from the holder's view too, so the next repetition joins the same room size.
        await fw.wait_for_member_gone(holder.api, holder_user, room_id, user.user_id)
    return joiner, result


async def run_joins(bed: TestBed, sizes: dict[str, int], results: dict[str, Any]) -> None:
    """Builds a big room on each product the selected paths need (at once), then runs
    every path `join_reps` times, interleaved."""
    paths = _selected(JOIN_PATHS, bed.paths)
    products = sorted({holder for _, holder in paths})
    holders = dict(zip(products, await asyncio.gather(
        *(_big_room(bed, product, sizes) for product in products)), strict=True))
    results["rooms"] = {product: room for product, (_, _, room) in holders.items()}
    joiners: list[Peer] = []
    for rep in range(sizes["join_reps"]):
        for joiner_product, holder_product in paths:
            holder, holder_user, room = holders[holder_product]
            key = f"{joiner_product}->{holder_product}"
            entry = results.setdefault(key, {"reps": [], "failures": []})
            try:
                joiner, result = await _one_join(bed, joiner_product, holder, holder_user,
                                                 room["room_id"], rep)
                joiners.append(joiner)
            except Exception as exc:  # noqa: BLE001 - one broken path must not end the run
                logger.warning("join %s #%d failed: %s", key, rep + 1, exc)
                entry["failures"].append(f"#{rep + 1}: {type(exc).__name__}: {exc}"[:400])
                continue
            entry["reps"].append(result)
            logger.info("join %s #%d: %s", key, rep + 1,
                        {k: round(v, 2) for k, v in result.items()})
    for peer in [*joiners, *(holder for holder, _, _ in holders.values())]:
        await bed.stop(peer)


# -- main ------------------------------------------------------------------------------

async def _run(args: argparse.Namespace, sizes: dict[str, int], synapse_python: Path | None,
               results: dict[str, Any]) -> None:
    skip = {part.strip() for part in args.skip.split(",") if part.strip()}
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector) as session:
        paths = {part.strip() for part in args.paths.split(",") if part.strip()}
        bed = TestBed(session, synapse_python, args.room_version, args.keep_logs, paths)
        try:
            for phase, run in (("delivery", run_delivery), ("joins", run_joins)):
                if phase in skip:
                    continue
                phase_results = results.setdefault(phase, {})
                try:
                    await run(bed, sizes, phase_results)
                except Exception as exc:  # noqa: BLE001 - reported; the other phase still runs
                    logger.error("%s set-up failed: %s", phase, exc)
                    phase_results["set-up"] = {"failures": [f"{type(exc).__name__}: {exc}"[:400]]}
                    await bed.stop_all()
        finally:
            await bed.close()


def _on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                        datefmt="%H:%M:%S")
    signal.signal(signal.SIGTERM, _on_sigterm)
    sizes = _sizes(args)
    started = datetime.now(UTC)
    synapse_python = ensure_synapse(args.synapse_venv, args.synapse_version)
    environment = {
        "cpu_count": os.cpu_count(), "cpu_model": _cpu_model(),
        "python": platform.python_version(), "loadavg_start": _loadavg(),
        "guildhall_version": guildhall_version(),
        "synapse_version": synapse_version(synapse_python),
    }
    results: dict[str, Any] = {}
    try:
        asyncio.run(_run(args, sizes, synapse_python, results))
    except KeyboardInterrupt as exc:
        logger.error("interrupted (%s); every server was stopped", exc or "Ctrl-C")
        return 130
    environment["loadavg_end"] = _loadavg()
    report = federation_report.build({
        "benchmark": "federation", "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "duration_s": round((datetime.now(UTC) - started).total_seconds(), 1),
        "note": args.note, "environment": environment,
        "parameters": {**sizes, "room_version": args.room_version, "quick": args.quick},
        "results": results,
    })
    stem = f"federation-{started.strftime('%Y%m%d-%H%M')}{'-quick' if args.quick else ''}"
    md_path, json_path = federation_report.write(report, args.results_dir, stem)
    print(federation_report.markdown(report))
    print(f"written: {md_path} and {json_path} ({report['duration_s']:.0f} s)")
    return 1 if federation_report.failed(report) else 0


if __name__ == "__main__":
    sys.exit(main())
