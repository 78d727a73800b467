"""Settings: connections from the environment, tuning constants with defaults.

Every tuning constant can be set with an environment variable ``COPIER_<NAME>`` (for
example ``COPIER_COST_PER_FILE=131072``). Connections:

    COPIER_REDIS_URL                   Redis of the distributed backends
    COPIER_QUEUE_CONNECTION_STRING     Azure Storage account holding the work queues
    AZURE_STORAGE_CONNECTION_STRING    the target account (see targets/url.py for others)
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import BaseModel, Field, ValidationError

from copier.errors import ConfigError


class Tuning(BaseModel):
    """Knobs of the pipeline. Costs are in byte-equivalents: a file costs
    ``cost_per_file + size * cost_per_byte``."""

    cost_per_file: int = Field(64 * 1024, ge=0, description="fixed cost of one file (round trips)")
    cost_per_byte: float = Field(1.0, ge=0)
    batch_max_items: int = Field(250, ge=1, le=2000, description="file items in one queue message")
    batch_max_cost: int = Field(64 * 1024 * 1024, ge=1, description="cost of one queue message")
    deal_ahead_batches: int = Field(4, ge=1, description="batches a slot may hold beyond what it finished")
    balance_slack: float = Field(0.02, ge=0, description="how far (a fraction of the least-served live "
                                 "worker's cost) a worker may be dealt ahead of it; large values deal by speed")
    stall_s: float = Field(20.0, gt=0, description="a worker that finishes nothing this long is not waited for")
    intake_high_water: int = Field(200_000, ge=1000, description="items waiting before seeders pause")
    page_entries: int = Field(5000, ge=10, description="directory entries per committed listing page")
    dirs_per_claim: int = Field(16, ge=1, le=1000, description="directory nodes a seeder claims, lists and "
                                "hands on together (one round trip per that many small folders)")
    sort_names_max: int = Field(1_000_000, ge=100, description="names of one directory sorted in memory at once")
    worker_concurrency: int = Field(16, ge=1, le=512, description="copies in flight in one worker")
    receive_max: int = Field(32, ge=1, le=32)
    visibility_timeout_s: float = Field(60.0, ge=1, description="how long a received message stays hidden; "
                                        "extended while its batch is copied, so a killed worker's comes back soon")
    slot_lease_s: float = Field(30.0, ge=1)
    dir_lease_s: float = Field(60.0, ge=1)
    max_deliveries: int = Field(5, ge=1, description="deliveries before a message is dead-lettered")
    idle_poll_s: float = Field(0.5, gt=0, description="pause between polls when there is nothing to do")
    transfer_attempts: int = Field(5, ge=1, description="attempts at one file on transient errors")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> "Tuning":
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for name in cls.model_fields:
            key = f"COPIER_{name.upper()}"
            if key in env:
                values[name] = env[key]
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls(**values)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = first["loc"][0] if first["loc"] else "?"
            raise ConfigError(f"bad setting COPIER_{str(field).upper()}: {first['msg']}") from None


# Idle poll of `copier copy` on the embedded SQLite state, where a poll is a local query: the
# 0.5 s default (chosen so an idle fleet costs Redis and Azure few requests) left local workers
# waiting on the dealer's backoff. 20,000 small files to tmpfs, 2 cores: 1.8-2.0 s at 0.5,
# 1.38-1.39 s at 0.05, 1.50-1.57 s at 0.02.
EMBEDDED_IDLE_POLL_S = 0.05


def default_state_path(job: str) -> str:
    """Per-user state directory for the embedded backends (XDG_STATE_HOME on Linux)."""
    base = os.environ.get("COPIER_STATE_DIR") or os.path.join(
        os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state"), "copier")
    os.makedirs(base, exist_ok=True)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in job)[:100] or "job"
    return os.path.join(base, f"{safe}.sqlite")
