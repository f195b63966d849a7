"""The transactional outbox: internal events written in the application's own transaction,
relayed to the queue, handled by Inbox-style consumers (retries, ordering, DLQ)."""

from __future__ import annotations

from ._outbox import Outbox

__all__ = ["Outbox"]
