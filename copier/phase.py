"""Where a job stands, derived from the state; every role asks the same question here."""

from __future__ import annotations

from copier.models import Counters, Phase
from copier.protocols import Frontier, StateStore


def job_phase(frontier: Frontier, state: StateStore, counters: Counters | None = None,
              walked: bool = False) -> Phase:
    """SEEDING while directories wait or are leased; COPYING while items wait to be dealt
    or dealt batches (sent or still pending) are not complete; then DONE. ``walked``: the
    caller saw the frontier exhausted already (it stays so), so it is not asked again."""
    if not walked and not frontier.exhausted():
        return Phase.SEEDING
    counters = counters or state.counters()
    if counters.items_waiting or counters.batches_completed < counters.batches_dealt:
        return Phase.COPYING
    return Phase.DONE
