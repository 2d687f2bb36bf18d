"""Turns the raw repetitions into medians, Guildhall/Synapse ratios, markdown and JSON."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Metric:
    key: str              # "<workload>.<field>" in a run's results
    label: str
    unit: str
    higher_is_better: bool | None  # None: no ratio (counts that must be 0)
    aggregate: str = "median"       # or "sum" (over repetitions) or "single"


METRICS = [
    Metric("send.messages_per_s", "send throughput", "msg/s", True),
    Metric("send.server_cpu_ms_per_msg", "server CPU per message", "ms", False),
    Metric("send.db_cpu_ms_per_msg", "PostgreSQL CPU per message", "ms", False),
    Metric("send.send_p50_ms", "send request latency p50", "ms", False),
    Metric("send.send_p99_ms", "send request latency p99", "ms", False),
    Metric("send.errors", "send errors", "", None, "sum"),
    Metric("fanout.p50_ms", "fan-out latency p50", "ms", False),
    Metric("fanout.p99_ms", "fan-out latency p99", "ms", False),
    Metric("fanout.max_ms", "fan-out latency max", "ms", False),
    Metric("fanout.missed", "fan-out missed deliveries", "", None, "sum"),
    Metric("fanout.errors", "fan-out request errors", "", None, "sum"),
    Metric("fanout_receipts.p50_ms", "fan-out with read receipts p50", "ms", False),
    Metric("fanout_receipts.p99_ms", "fan-out with read receipts p99", "ms", False),
    Metric("fanout_receipts.missed", "fan-out with read receipts missed", "", None, "sum"),
    Metric("fanout_receipts.errors", "fan-out with read receipts errors", "", None, "sum"),
    Metric("join.seconds", "join storm total time", "s", False),
    Metric("join.joins_per_s", "join storm rate", "joins/s", True),
    Metric("join.join_p99_ms", "join latency p99", "ms", False),
    Metric("join.server_cpu_ms_per_join", "server CPU per join", "ms", False),
    Metric("join.errors", "join errors (+ members missing)", "", None, "sum"),
    Metric("paging.pages_per_s", "/messages paging", "pages/s", True),
    Metric("paging.events_per_s", "/messages paging", "events/s", True),
    Metric("paging.server_cpu_ms_per_page", "server CPU per page", "ms", False),
    Metric("paging.messages_missing", "paging messages missing", "", None, "sum"),
    Metric("resources.startup_s", "startup time", "s", False, "single"),
    Metric("resources.registration_users_per_s", "registration rate", "users/s", True,
           "single"),
    Metric("resources.idle_rss_mib", "idle RSS after registration", "MiB", False, "single"),
    Metric("resources.peak_rss_mib", "peak RSS (VmHWM)", "MiB", False, "single"),
    Metric("resources.total_cpu_s", "server CPU over the whole run", "s", False, "single"),
]

PRODUCTS = ("guildhall", "synapse")


def summarize(run: dict[str, Any]) -> dict[str, float | None]:
    """One number per metric for one server on one database."""
    out: dict[str, float | None] = {}
    for metric in METRICS:
        workload, field = metric.key.split(".", 1)
        if metric.aggregate == "single":
            value = run.get(workload, {}).get(field)
            out[metric.key] = float(value) if value is not None else None
            continue
        values = [rep[field] for rep in run.get(workload, {}).get("reps", []) if field in rep]
        if workload == "join" and field == "errors":
            values = [rep["errors"] + rep.get("members_missing", 0)
                      for rep in run.get("join", {}).get("reps", [])]
        if not values:
            out[metric.key] = None
        elif metric.aggregate == "sum":
            out[metric.key] = float(sum(values))
        else:
            out[metric.key] = float(statistics.median(values))
    return out


def advantage(metric: Metric, guildhall: float | None, synapse: float | None) -> float | None:
    """Guildhall's advantage: >1 means Guildhall is better, whichever way the metric points."""
    if metric.higher_is_better is None or not guildhall or not synapse:
        return None
    return guildhall / synapse if metric.higher_is_better else synapse / guildhall


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if abs(value) >= 0.1 else f"{value:.3f}"


def table(summaries: dict[str, dict[str, float | None]]) -> list[str]:
    lines = ["| metric | unit | Guildhall | Synapse | Guildhall advantage (×, >1 = better) |",
             "|---|---|---:|---:|---:|"]
    for metric in METRICS:
        g = summaries.get("guildhall", {}).get(metric.key)
        s = summaries.get("synapse", {}).get(metric.key)
        if g is None and s is None:
            continue
        ratio = advantage(metric, g, s)
        lines.append(f"| {metric.label} | {metric.unit} | {_fmt(g)} | {_fmt(s)} | "
                     f"{'—' if ratio is None else f'{ratio:.2f}×'} |")
    return lines


def build(results: dict[str, Any]) -> dict[str, Any]:
    """Adds `summary` (per database, per product) and `advantage` to the raw results."""
    summary: dict[str, Any] = {}
    for database, runs in results["runs"].items():
        per_product = {p: summarize(runs[p]) for p in PRODUCTS if p in runs}
        ratios = {m.key: advantage(m, per_product.get("guildhall", {}).get(m.key),
                                   per_product.get("synapse", {}).get(m.key)) for m in METRICS}
        summary[database] = {**per_product, "guildhall_advantage": ratios}
    return {**results, "summary": summary}


def markdown(report: dict[str, Any]) -> str:
    env = report["environment"]
    params = report["parameters"]
    lines = [f"# Client-Server load: Guildhall vs Synapse ({report['date']})", ""]
    if report.get("note"):
        lines += [f"> {report['note']}", ""]
    lines += [
        f"- machine: {env['cpu_count']} CPUs ({env['cpu_model']}), load average at start "
        f"{env['loadavg_start']}, at end {env.get('loadavg_end', '?')}",
        f"- Python {env['python']}; Guildhall {env['guildhall_version']}; "
        f"Synapse {env['synapse_version']}; PostgreSQL {env.get('postgresql', 'n/a')}",
        f"- room version {params['room_version']}; {params['reps']} repetitions per workload "
        f"(medians; counts of errors are sums); log level {params['log_level']}",
        f"- sizes: send {params['send_messages']} messages from {params['senders']} senders; "
        f"fan-out {params['fanout_messages']} messages to {params['listeners']} listeners; "
        f"join storm {params['joiners']} users; paging {params['paging_messages']} messages "
        f"at limit={params['page_limit']}",
        "- Guildhall advantage: Guildhall/Synapse for rates, Synapse/Guildhall for times, CPU "
        "and memory; >1 means Guildhall is better. The load client runs on the same machine.",
        "",
    ]
    for database, summary in report["summary"].items():
        lines += [f"## {database}", ""]
        lines += table({p: summary[p] for p in PRODUCTS if p in summary})
        failures = [f"- {product}: {text}" for product in PRODUCTS
                    for text in report["runs"][database].get(product, {}).get("failures", [])]
        if failures:
            lines += ["", "Failures:", *failures]
        notes = [f"- {product}: {text}" for product in PRODUCTS
                 for text in report["runs"][database].get(product, {}).get("notes", [])]
        if notes:
            lines += ["", "Notes:", *notes]
        lines.append("")
    return "\n".join(lines)


def write(report: dict[str, Any], directory: Path, stem: str) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    md_path, json_path = directory / f"{stem}.md", directory / f"{stem}.json"
    md_path.write_text(markdown(report))
    json_path.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
    return md_path, json_path
