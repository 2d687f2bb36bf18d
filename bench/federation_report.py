"""The federation benchmark's repetitions turned into medians, ratios, markdown and JSON."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from .report import _fmt

NAMES = {"guildhall": "Guildhall", "synapse": "Synapse"}
REFERENCE = "synapse->synapse"
DELIVERY_MEDIANS = ("p50_ms", "p99_ms", "max_ms", "send_p50_ms", "sender_cpu_ms_per_msg",
                    "receiver_cpu_ms_per_msg")
JOIN_MEDIANS = ("join_return_s", "sync_joined_s", "sync_lazy_joined_s")
COUNTS = ("missed", "errors")


def _median(reps: list[dict[str, float]], key: str) -> float | None:
    values = [rep[key] for rep in reps if key in rep]
    return float(statistics.median(values)) if values else None


def _summarize(entry: dict[str, Any], medians: tuple[str, ...]) -> dict[str, Any]:
    reps = entry.get("reps", [])
    summary: dict[str, Any] = {key: _median(reps, key) for key in medians}
    summary["reps"] = len(reps)
    for key in COUNTS:
        summary[key] = sum(rep.get(key, 0.0) for rep in reps)
    for key in ("members_seen", "state_events_seen"):
        values = [rep[key] for rep in reps if key in rep]
        summary[key] = min(values) if values else None
    summary["partial_state_join"] = any(rep.get("partial_state_join") for rep in reps)
    return summary


def _advantage(reference: float | None, value: float | None) -> float | None:
    """Reference time / this time: above 1 means this path is faster than Synapse's own."""
    return reference / value if reference and value else None


def build(raw: dict[str, Any]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for section, medians, ratio_keys in (
            ("delivery", DELIVERY_MEDIANS, ("p50_ms", "p99_ms")),
            ("joins", JOIN_MEDIANS, ("join_return_s", "sync_joined_s"))):
        paths = {key: _summarize(entry, medians)
                 for key, entry in raw["results"].get(section, {}).items() if "->" in key}
        reference = paths.get(REFERENCE, {})
        for values in paths.values():
            values["vs_synapse"] = {key: _advantage(reference.get(key), values.get(key))
                                    for key in ratio_keys}
        summary[section] = paths
    return {**raw, "summary": summary}


def _path_name(key: str, joins: bool = False) -> str:
    first, second = (NAMES.get(part, part) for part in key.split("->"))
    return f"{first} joins a {second} room" if joins else f"{first} → {second}"


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


DELIVERY_HEADER = ["path", "p50 ms", "p99 ms", "max ms", "send request p50 ms",
                   "sender CPU ms/msg", "receiver CPU ms/msg", "missed", "errors",
                   "p50 vs Synapse→Synapse", "p99 vs Synapse→Synapse"]
JOIN_HEADER = ["joiner → room holder", "`POST /join` returns s", "/sync shows it joined s",
               "/sync (lazy-loaded members) s", "members seen", "state events seen",
               "partial-state join", "/join vs Synapse→Synapse", "/sync vs Synapse→Synapse"]


def _delivery_table(paths: dict[str, Any]) -> list[str]:
    lines = [_row(DELIVERY_HEADER), _row(["---"] + ["---:"] * (len(DELIVERY_HEADER) - 1))]
    for key, s in paths.items():
        lines.append(_row([
            _path_name(key), _fmt(s["p50_ms"]), _fmt(s["p99_ms"]), _fmt(s["max_ms"]),
            _fmt(s["send_p50_ms"]), _fmt(s["sender_cpu_ms_per_msg"]),
            _fmt(s["receiver_cpu_ms_per_msg"]), f"{s['missed']:.0f}", f"{s['errors']:.0f}",
            _ratio(s["vs_synapse"]["p50_ms"]), _ratio(s["vs_synapse"]["p99_ms"])]))
    return lines


def _join_table(paths: dict[str, Any]) -> list[str]:
    lines = [_row(JOIN_HEADER), _row(["---"] + ["---:"] * (len(JOIN_HEADER) - 1))]
    for key, s in paths.items():
        lines.append(_row([
            _path_name(key, joins=True), _fmt(s["join_return_s"]), _fmt(s["sync_joined_s"]),
            _fmt(s["sync_lazy_joined_s"]), _fmt(s["members_seen"]),
            _fmt(s["state_events_seen"]), "yes" if s["partial_state_join"] else "no",
            _ratio(s["vs_synapse"]["join_return_s"]), _ratio(s["vs_synapse"]["sync_joined_s"])]))
    return lines


def _per_rep(report: dict[str, Any], section: str, keys: tuple[str, ...],
             joins: bool = False) -> list[str]:
    """Each repetition's values, so a reader sees how much the medians hide."""
    lines = []
    for path, entry in report["results"].get(section, {}).items():
        if "->" not in path:
            continue
        values = "; ".join(f"{key} " + " / ".join(_fmt(rep.get(key)) for rep in entry["reps"])
                           for key in keys)
        lines.append(f"- {_path_name(path, joins)}: {values}")
    return ["Per repetition:", "", *lines] if lines else []


def _rooms(rooms: dict[str, Any]) -> list[str]:
    return [f"- big room on {NAMES.get(product, product)}: {room['joined_members']} joined "
            f"members, {room['state_events']} state events; built in {room['build_s']:.0f} s "
            f"after registering its users in {room['register_s']:.0f} s (untimed set-up)"
            for product, room in rooms.items()]


def _failures(raw: dict[str, Any]) -> list[str]:
    return [f"- {section} {key}: {text}"
            for section, entries in raw["results"].items()
            for key, entry in entries.items() if key != "rooms"
            for text in entry.get("failures", [])]


def failed(report: dict[str, Any]) -> bool:
    counts = any(s.get(key) for section in report["summary"].values()
                 for s in section.values() for key in COUNTS)
    return bool(_failures(report)) or counts


def markdown(report: dict[str, Any]) -> str:
    env, params = report["environment"], report["parameters"]
    lines = [f"# Federation: Guildhall and Synapse on loopback ({report['date']})", ""]
    if report.get("note"):
        lines += [f"> {report['note']}", ""]
    lines += [
        (f"- machine: {env['cpu_count']} CPUs ({env['cpu_model']}) shared by every server and "
         f"the load client; load average at start {env['loadavg_start']}, at end "
         f"{env.get('loadavg_end', '?')}"),
        (f"- Python {env['python']}; Guildhall {env['guildhall_version']}; "
         f"Synapse {env['synapse_version']} (PyPI); SQLite for every server; room version "
         f"{params['room_version']}; run took {report['duration_s']:.0f} s"),
        ("- every server is its own process on its own 127.0.9.x address, federating over "
         "HTTPS with certificates from one test CA, verification on (tests/federation test "
         "beds; Synapse as in MATRIX_DIGEST.md 5.9, with `bcrypt_rounds: 4` for a quick set-up and `rc_federation` limits lifted)"),
        ("- ratios: Synapse→Synapse time / this path's time; above 1 means faster than "
         "Synapse federating with itself"),
    ]
    if "delivery" in report["results"]:
        lines += _delivery_section(report, params)
    if "joins" in report["results"]:
        lines += _joins_section(report, params)
    failures = _failures(report)
    if failures:
        lines += ["", "## Failures", "", *failures]
    return "\n".join(lines) + "\n"


def _delivery_section(report: dict[str, Any], params: dict[str, Any]) -> list[str]:
    return [
        "",
        "## Delivery latency",
        "",
        (f"A user on the first server sends {params['messages']} messages one at a time into "
         "a room both servers are in; a user on the second waits in a `/sync` long-poll "
         "(timeout 30 s, re-polling at once with `next_batch`). Latency: from the start of "
         "the send request to the moment the receiver has the `/sync` response holding the "
         "message. The next message goes once it arrived, plus 50 ms. Three warm-up messages "
         "(connections, keys) are not counted. Medians over "
         f"{params['delivery_reps']} repetitions, each in a fresh room; CPU is the server "
         "process's user+system time over the timed messages, per message."),
        "",
        *_delivery_table(report["summary"].get("delivery", {})),
        "",
        *_per_rep(report, "delivery", ("p50_ms", "p99_ms")),
    ]


def _joins_section(report: dict[str, Any], params: dict[str, Any]) -> list[str]:
    return [
        "",
        "## Remote join of a big room",
        "",
        (f"The room holder has a public room with {params['members']} joined members (registered "
         "through the Client-Server API, then joined) and custom `org.guildhall.bench.state` "
         f"events with distinct state keys up to {params['state_events']} state events. A user "
         "on a fresh server (started for each repetition, so it knows nothing of the room) "
         "calls `POST /join/{roomId}?via=<holder>`; timed from the start of that call until it "
         "returns, and until the joiner's `/sync` long-poll lists the room under `join`, with a "
         "plain filter and with lazy-loaded members. The joiner then leaves, so every "
         "repetition joins a room of the same size; it keeps running until the last join, "
         "as later joiners must verify its events with its key. Medians over "
         f"{params['join_reps']} repetitions."),
        "",
        *_join_table(report["summary"].get("joins", {})),
        "",
        *_per_rep(report, "joins", ("join_return_s", "sync_joined_s"), joins=True),
        "",
        *_rooms(report["results"].get("joins", {}).get("rooms", {})),
        "",
        ("Synapse joins with partial state (\"faster joins\", MSC3706) when the resident "
         "server omits members from the `send_join` answer: its `/join` then returns before "
         "it holds the room's full state, and a plain `/sync` leaves the room out until the "
         "state resync ends (lazy-loading clients see it earlier). \"partial-state join: yes\" "
         "means Synapse logged a partial-state resync of the room."),
    ]


def write(report: dict[str, Any], directory: Path, stem: str) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    md_path, json_path = directory / f"{stem}.md", directory / f"{stem}.json"
    md_path.write_text(markdown(report))
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    return md_path, json_path
