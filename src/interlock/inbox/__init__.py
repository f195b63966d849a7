"""Inbound webhooks: verify, dedupe, store durably, acknowledge in milliseconds, process later.

Importing this package does not import starlette or asyncpg; the ASGI app is raw ASGI.
"""

from __future__ import annotations

from ..core.redelivery import Redelivery
from ..stores.queue import DeadLetter, DeadLetterFilter, Failure
from . import signatures
from ._event import Event
from ._inbox import Inbox
from ._source import Source
from .asgi import InboxApp
from .dlq import DeadLetters
from .worker import WorkerPool

__all__ = [
    "DeadLetter",
    "DeadLetterFilter",
    "DeadLetters",
    "Event",
    "Failure",
    "Inbox",
    "InboxApp",
    "Redelivery",
    "Source",
    "WorkerPool",
    "signatures",
]
