"""The server's own monitor scheduler: every ``tick_s`` it runs the monitors that are due.

A monitor is due when its interval has passed since its last stored window (so a restart
neither skips nor repeats a window). The work runs in a worker thread, never on the event loop,
and a failing run is logged and retried on the next tick: the scheduler never stops on an
error. Run it on one replica (``STEWARD_MONITOR_SCHEDULER=false`` on the others) or not at all
when an orchestrator calls ``steward monitor run``.
"""

from __future__ import annotations

import asyncio
import logging

from steward.wiring import Services

logger = logging.getLogger(__name__)

SCHEDULER_ACTOR = "steward-scheduler"


async def run_scheduler(services: Services, tick_s: float) -> None:
    """Until cancelled."""
    while True:
        await asyncio.to_thread(tick, services)
        await asyncio.sleep(tick_s)


def tick(services: Services) -> int:
    """Run what is due; the number of monitors run."""
    try:
        outcomes = services.run_due_monitors(SCHEDULER_ACTOR)
    except Exception:
        logger.exception("the monitor scheduler's tick failed; retrying on the next one")
        return 0
    for outcome in outcomes:
        window = outcome.window
        logger.info("monitor %s: %s, %d rows, %d alert(s) fired", window.deployment,
                    window.status.value, window.rows, len(outcome.fired))  # fmt: skip
    return len(outcomes)
