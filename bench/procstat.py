"""CPU time and memory of a process, read from /proc (Linux only, no dependency).

CPU is utime+stime of every thread of the process (fields 14 and 15 of
/proc/PID/stat), plus cutime+cstime (16, 17: children it has reaped), in
seconds. Memory is VmRSS / VmHWM from /proc/PID/status.
"""

from __future__ import annotations

import os
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str]:
    text = (PROC / str(pid) / "stat").read_text()
    # The command name (field 2) is in parentheses and may contain spaces.
    return text[text.rindex(")") + 2:].split()


def cpu_seconds(pid: int, include_children: bool = False) -> float:
    """User+system CPU seconds of `pid` (and of its reaped children if asked)."""
    fields = _stat_fields(pid)
    # After the ")" the list starts at field 3 (state), so field N is fields[N - 3].
    ticks = int(fields[11]) + int(fields[12])
    if include_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLK_TCK


def parent_pid(pid: int) -> int:
    return int(_stat_fields(pid)[1])


def status_kib(pid: int, key: str) -> int:
    """A `kB` line of /proc/PID/status (VmRSS, VmHWM, ...), in KiB."""
    for line in (PROC / str(pid) / "status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def rss_mib(pid: int) -> float:
    return status_kib(pid, "VmRSS") / 1024


def peak_rss_mib(pid: int) -> float:
    return status_kib(pid, "VmHWM") / 1024


def tree_cpu_seconds(root_pid: int) -> float:
    """CPU of `root_pid`, its reaped children, and its live direct children.

    Used for the PostgreSQL postmaster: each connection is a child backend
    process; ended backends are reaped by the postmaster (so they are in its
    cutime/cstime), live ones are summed here. One pass over /proc.
    """
    total = cpu_seconds(root_pid, include_children=True)
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if parent_pid(int(entry.name)) == root_pid:
                total += cpu_seconds(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue  # the process ended while we looked
    return total
