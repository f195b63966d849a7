"""Webhook signature schemes, importable as ``interlock.signatures``:
``from interlock.signatures import Stripe``.

The schemes live with the Inbox (``interlock.inbox.signatures``, one module per provider);
this module is the same objects under the short name the README uses.
"""

from __future__ import annotations

from .inbox.signatures import (
    DEFAULT_TOLERANCE,
    HMAC,
    GitHub,
    Shopify,
    SignatureScheme,
    Slack,
    StandardWebhooks,
    Stripe,
)

__all__ = [
    "DEFAULT_TOLERANCE",
    "HMAC",
    "GitHub",
    "Shopify",
    "SignatureScheme",
    "Slack",
    "StandardWebhooks",
    "Stripe",
]
