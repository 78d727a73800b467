"""``copier status`` and ``copier failures``: read the state, never change it."""

from __future__ import annotations

import time
from typing import Any

from copier.models import Phase
from copier.phase import job_phase
from copier.protocols import Frontier, QueueFactory, StateStore


def status_document(job: str, frontier: Frontier, state: StateStore, queues: QueueFactory | None) -> dict[str, Any]:
    phase = job_phase(frontier, state)  # reads the counters after the frontier: never DONE early
    counters = state.counters()
    spec = state.spec()
    now = time.time()
    workers = []
    for info in state.slots():
        depth = None
        if queues is not None:
            try:
                depth = queues.queue(info.slot).depth()
            except Exception:  # status never fails on one unreachable queue
                depth = None
        workers.append({
            "id": info.holder or f"slot-{info.slot} (free)",
            "slot": info.slot,
            "live": info.live(now),
            "queue_depth": depth,
            "files_done": info.files_done,
            "bytes_done": info.bytes_done,
            "assigned_cost": info.assigned_cost,
            "done_cost": info.done_cost,
            "last_seen": info.last_seen,
        })
    costs = [w["assigned_cost"] for w in workers if w["assigned_cost"]]
    doc: dict[str, Any] = {
        "job": job,
        "state": str(phase),
        "source": spec.source if spec else None,
        "target": spec.target if spec else None,
        **{k: v for k, v in counters.to_dict().items()},
        "workers": workers,
        "assigned_cost_max_over_mean": round(max(costs) / (sum(costs) / len(costs)), 4) if costs else None,
    }
    doc["files_settled"] = counters.files_settled
    return doc


def render_status(doc: dict[str, Any]) -> str:
    lines = [
        f"job {doc['job']}: {doc['state']}   {doc.get('source')} -> {doc.get('target')}",
        f"  dirs   {doc['dirs_done']}/{doc['dirs_total']} listed",
        f"  files  {doc['files_done']} copied, {doc['files_skipped']} skipped, {doc['files_failed']} failed"
        f" of {doc['files_total']} found ({doc['items_waiting']} waiting to be dealt)",
        f"  bytes  {_size(doc['bytes_done'])} copied of {_size(doc['bytes_total'])}",
        f"  other  {doc['entries_failed']} entries not copied (symlinks, special files, unreadable dirs)",
    ]
    if doc["workers"]:
        lines.append("  workers:")
        for w in doc["workers"]:
            depth = "?" if w["queue_depth"] is None else w["queue_depth"]
            seen = f"{time.time() - w['last_seen']:.0f}s ago" if w["last_seen"] else "never"
            lines.append(f"    slot {w['slot']:>3} {w['id']:<40} queue {depth:>6}  files {w['files_done']:>9}"
                         f"  cost {w['assigned_cost']:>14}  seen {seen}{'' if w['live'] else '  (lease expired)'}")
    if doc.get("assigned_cost_max_over_mean"):
        lines.append(f"  balance: assigned cost max/mean {doc['assigned_cost_max_over_mean']}")
    return "\n".join(lines)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def is_done(doc: dict[str, Any]) -> bool:
    return doc["state"] == str(Phase.DONE)
