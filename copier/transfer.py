"""The one copy routine: one work item from the source root to a target.

    transfer(item) → skip check (only when asked) → read the source → target.put → Outcome

Retries live here, once: a whole transfer is tried again on ``TransientError`` with
jittered exponential backoff (tenacity); a ``PermanentError`` becomes a failed Outcome with
its reason; a ``FatalError`` propagates and stops the worker.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import StrEnum

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from copier.errors import PermanentError, TransientError
from copier.models import WorkItem
from copier.payload import FilePayload, gate_for_source
from copier.protocols import Sweeper, Target, TargetStat


class Status(StrEnum):
    COPIED = "copied"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Outcome:
    item: WorkItem
    status: Status
    reason: str = ""


def matches(stat: TargetStat | None, item: WorkItem, tolerance_ns: int) -> bool:
    """The target already holds this file: same size and the same source mtime."""
    return (stat is not None and stat.size == item.size and stat.mtime_ns is not None
            and abs(stat.mtime_ns - item.mtime_ns) <= tolerance_ns)


class Transfer:
    """Copies work items from ``source_root`` to ``target``."""

    def __init__(self, source_root: str, target: Target, attempts: int = 5, max_wait_s: float = 30.0) -> None:
        self.source_root = source_root
        self.target = target
        self._hash_gate = gate_for_source(source_root)
        self._retrying = Retrying(
            retry=retry_if_exception_type(TransientError),
            stop=stop_after_attempt(max(1, attempts - 1)),  # after the first, untimed attempt
            wait=wait_random_exponential(multiplier=0.2, max=max_wait_s),
            reraise=True,
        )

    def __call__(self, item: WorkItem, check_target: bool, match_is_ours: bool = False) -> Outcome:
        """Copy one item. With ``check_target`` the target is looked at first and a match is
        not sent again. A match counts as SKIPPED (it was there before the job), or as COPIED
        when ``match_is_ours``: a redelivered batch whose earlier attempt wrote it."""
        try:
            try:
                return self._attempt(item, check_target, match_is_ours)
            except TransientError:  # most attempts succeed: enter the retry policy only now
                return self._retrying(self._attempt, item, check_target, match_is_ours)
        except TransientError as exc:
            return Outcome(item, Status.FAILED, f"gave up after retries: {exc}")
        except PermanentError as exc:
            return Outcome(item, Status.FAILED, str(exc) or type(exc).__name__)

    def _attempt(self, item: WorkItem, check_target: bool, match_is_ours: bool) -> Outcome:
        if match_is_ours and isinstance(self.target, Sweeper):
            self.target.sweep(item.path)  # an interrupted earlier attempt may have left a temp file
        if check_target and matches(self.target.stat(item.path), item, self.target.mtime_tolerance_ns):
            return Outcome(item, Status.COPIED if match_is_ours else Status.SKIPPED)
        payload = FilePayload(os.path.join(self.source_root, item.path), item.size, item.mtime_ns, item.mode,
                              self._hash_gate)
        self.target.put(item.path, payload)
        return Outcome(item, Status.COPIED)
