"""CPU time of each process of a mesh, read from /proc, to report CPU per request per part.

CPU seconds per request are steadier than throughput on a shared machine: another job's load
stretches wall time for every target alike but adds little to the CPU a request itself costs.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")

# How each process of a mesh is told apart, by what its command line runs.
PARTS = (("meshserve.envoy.process", "envoy"), ("_bin/envoy", "envoy"), ("meshserve.router.server", "router"),
         ("meshserve.adapters.server", "adapter"), ("meshserve.sidecars.records.recorder", "recorder"),
         ("tritonserver", "triton"), ("--receiver", "receiver"), (" up ", "launcher"),
         ("echo_servers.py echo ", "echo"), ("echo_servers.py forward ", "forwarder"),
         (".venv-mlserver/bin/", "mlserver"))  # MLServer's server, its inference workers and their helper


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds used so far: user + system, own threads included)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # the command name may hold spaces and parentheses
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS


def _part(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "other"
    return next((part for marker, part in PARTS if marker in f" {argv} "), "other")


def process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = defaultdict(list)
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:
            children[stat[0]].append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


class PartsCpu:
    """CPU seconds per part (envoy, router, adapter, ...) of the processes under ROOTS since the last mark."""

    def __init__(self, *roots: int):
        self.roots = roots
        self._marked: dict[int, float] = {}

    def _now(self) -> dict[int, float]:
        return {pid: stat[1] for root in self.roots for pid in process_tree(root) if (stat := _stat(pid))}

    def mark(self) -> None:
        self._marked = self._now()

    def used(self) -> dict[str, float]:
        parts: dict[str, float] = defaultdict(float)
        for pid, seconds in self._now().items():
            parts[_part(pid)] += seconds - self._marked.get(pid, 0.0)
        return dict(parts)


def cpu_table(rows: dict[str, tuple[dict[str, float], int]], baseline: str) -> str:
    """Microseconds of CPU per request for each part, per target, and each target's total against BASELINE's."""
    parts = sorted({p for used, _ in rows.values() for p in used if p != "other"} | {"other"})
    lines = [f"{'target':<28}" + "".join(f"{p:>10}" for p in parts) + f"{'total':>10}{'total x':>9}"]
    base_used, base_requests = rows[baseline]
    base_total = sum(base_used.values()) / max(base_requests, 1)
    for label, (used, requests) in rows.items():
        per = {p: used.get(p, 0.0) / max(requests, 1) for p in parts}
        total = sum(per.values())
        lines.append(f"{label:<28}" + "".join(f"{per[p] * 1e6:>10.0f}" for p in parts)
                     + f"{total * 1e6:>10.0f}{total / base_total:>9.2f}")
    return "\n".join(lines)
