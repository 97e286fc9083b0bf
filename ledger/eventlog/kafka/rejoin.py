"""Keep a group member from stalling when a rebalance completes between two polls.

kafka-python 3.0 runs a member's JoinGroup/SyncGroup round trip as a task on its IO thread, and
``poll(timeout)`` waits for that task at most ``timeout``. When the wait runs out first, the task
finishes unobserved, and its result is only applied if a later poll still finds that the member
*needs* to rejoin. For a group leader that rejoins because its topic metadata changed (at start-up,
when the first assignment was computed before the partitions were known, or when partitions are
added), that need is a difference between two metadata snapshots, and computing the assignment
inside the task makes them equal again. The next poll then sees nothing to do: the member stays
in the ``rebalancing`` state with heartbeats off, never takes up its new assignment, and is
dropped from the group once its session times out, without ever rejoining. Two members started
together on a machine with every core busy hit this about once in ten starts: one took every
partition and the other sat idle for good.

:func:`finish_joins_between_polls` mends the member's coordinator (on the instance, nothing is
patched globally): it counts a join as needed while one is outstanding, and applies a join that
already finished instead of starting a new rebalance. On a kafka-python without these internals
it changes nothing and says so in the log.
"""

from __future__ import annotations

import logging
from typing import Any

from kafka import KafkaConsumer
from kafka.structs import MemberState

log = logging.getLogger(__name__)

_INTERNALS = (
    "need_rejoin",
    "join_group_async",
    "_join_task",
    "_lock",
    "_generation",
    "_enable_heartbeat",
    "_on_join_complete_async",
)


def finish_joins_between_polls(consumer: KafkaConsumer) -> bool:
    """Install the mend on ``consumer``'s group coordinator; whether it could be installed."""
    coordinator: Any = getattr(consumer, "_coordinator", None)
    if coordinator is None or not all(hasattr(coordinator, name) for name in _INTERNALS):
        log.warning(
            "this kafka-python has no join task to watch; a member whose rebalance "
            "finishes between polls may sit idle until its session times out"
        )
        return False
    needs_rejoin = coordinator.need_rejoin
    join_group = coordinator.join_group_async

    def need_rejoin() -> bool:
        return coordinator._join_task is not None or bool(needs_rejoin())

    async def join_group_async(timeout_ms: int | None = None) -> bool:
        task = coordinator._join_task
        if task is not None and task.is_done and task.exception is None:
            # What kafka-python does after a join it waited for, applied to the one it did not.
            coordinator._join_task = None
            with coordinator._lock:
                coordinator.rejoining = False
                coordinator.rejoin_needed = False
                coordinator.state = MemberState.STABLE
                coordinator._enable_heartbeat()
            generation = coordinator._generation
            log.info(
                "group %s: applying the assignment of generation %s, which completed between polls",
                coordinator.group_id,
                generation.generation_id,
            )
            await coordinator._on_join_complete_async(
                generation.generation_id, generation.member_id, generation.protocol, task.value
            )
        return bool(await join_group(timeout_ms=timeout_ms))

    coordinator.need_rejoin = need_rejoin
    coordinator.join_group_async = join_group_async
    return True
