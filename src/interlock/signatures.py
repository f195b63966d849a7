"""Webhook signature schemes, importable as ``interlock.signatures``:
``from interlock.signatures import Stripe``.

The schemes live with the Inbox (``interlock.inbox.signatures``, one module per provider);
this module is the same objects under the short name the README uses.
"""

from __future__ import annotations

from .inbox import signatures as _schemes
from .inbox.signatures import *  # noqa: F403 - the same names, whatever schemes are added there

__all__ = list(_schemes.__all__)
