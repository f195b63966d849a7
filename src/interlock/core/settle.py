"""How an inbox delivery is settled: acknowledge it, deliver it again later, or dead-letter it.

Pure decision, no I/O: the worker runs the handlers, sums up what happened in an ``Outcome``
and asks ``settle()``; it then makes the one queue call the decision names (``ack``, ``nack``
with the delay, ``dead_letter``) and does not re-derive it. ``admit()`` is asked before the
handlers run, for deliveries whose earlier leases all expired without an outcome.

The attempt count follows the queue's: 1 on the first delivery, one higher on every lease,
including after a lease that expired (the worker died or stalled).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum

from .redelivery import Redelivery
from .retry import RetryIn

__all__ = ["Ack", "Outcome", "RetryIn", "Settlement", "ToDeadLetters", "admit", "settle"]


class Outcome(Enum):
    """What came of one delivery, as far as settling it is concerned."""

    SUCCEEDED = "succeeded"  # every handler returned
    UNHANDLED = "unhandled"  # no handler is registered for the event's source and type
    FAILED = "failed"  # a handler raised: worth another delivery while attempts remain
    PERMANENT = "permanent"  # a handler raised PermanentFailure: another delivery cannot help


@dataclass(frozen=True, slots=True)
class Ack:
    """The delivery is done: acknowledge it (it stays only to drop duplicates until pruned)."""


@dataclass(frozen=True, slots=True)
class ToDeadLetters:
    """Move the event to the dead-letter queue, recording ``error``, for an operator to replay."""

    reason: str
    """Why no further delivery: ``permanent``, ``attempts`` (the last allowed one failed) or
    ``abandoned`` (a delivery numbered past the last attempt: earlier leases expired)."""
    error: str
    """The error recorded with this attempt, as the dead letter's last error."""


Settlement = Ack | RetryIn | ToDeadLetters
"""What the worker does with a delivery; ``RetryIn(delay)`` is a nack with that delay."""


def admit(attempt: int, redelivery: Redelivery) -> ToDeadLetters | None:
    """Before the handlers run: ``None`` to run them, or dead-letter a delivery numbered past
    the policy's last attempt (its earlier leases expired without an outcome, so the handler
    may be what kills its worker: running it again could take this one down too)."""
    if not redelivery.exhausted(attempt):
        return None
    return ToDeadLetters(
        "abandoned",
        f"delivery {attempt} is past the {redelivery.attempts} allowed: earlier "
        "leases expired without an outcome (the worker died or stalled)",
    )


def settle(
    attempt: int,
    outcome: Outcome,
    redelivery: Redelivery,
    *,
    error: str = "",
    rng: random.Random | None = None,
) -> Settlement:
    """Decide what follows delivery number ``attempt`` (1-based) given its ``outcome``.

    ``error`` describes the handler's exception for ``FAILED`` and ``PERMANENT``; it is what a
    dead letter records. A retry waits the policy's backoff for ``attempt`` (drawn with
    ``rng``); after the policy's last attempt the event is dead-lettered instead.
    """
    if outcome is Outcome.SUCCEEDED or outcome is Outcome.UNHANDLED:
        return Ack()
    if outcome is Outcome.PERMANENT:
        return ToDeadLetters("permanent", error)
    delay = redelivery.next_delay(attempt, rng)
    if delay is None:
        return ToDeadLetters("attempts", error)
    return RetryIn(delay)
