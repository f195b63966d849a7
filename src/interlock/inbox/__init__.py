"""Inbound webhooks: verify, dedupe, store durably, acknowledge in milliseconds, process later.

Importing this package does not import starlette or asyncpg; the ASGI app is raw ASGI.
"""

from __future__ import annotations

from ..core.redelivery import Redelivery
from ..stores.queue import DeadLetter, DeadLetterFilter, Failure
from . import signatures
from ._asgi import InboxApp
from ._dlq import DeadLetterMatch, DeadLetters
from ._event import Event, Handler
from ._forward import Forward, ForwardOptions
from ._inbox import Inbox
from ._metrics import InboxMetrics
from ._processes import WorkerProcesses, load_app, run_app_workers, worker_command
from ._retention import Pruner, Retention
from ._serve import ServeSettings
from ._source import Source
from ._worker import WorkerPool, WorkerSettings

__all__ = [
    "DeadLetter",
    "DeadLetterFilter",
    "DeadLetterMatch",
    "DeadLetters",
    "Event",
    "Failure",
    "Forward",
    "ForwardOptions",
    "Handler",
    "Inbox",
    "InboxApp",
    "InboxMetrics",
    "Pruner",
    "Redelivery",
    "Retention",
    "ServeSettings",
    "Source",
    "WorkerPool",
    "WorkerProcesses",
    "WorkerSettings",
    "load_app",
    "run_app_workers",
    "signatures",
    "worker_command",
]
