"""Webhook signature schemes, one module per provider behind one Protocol.

``interlock.signatures.Stripe(secrets=["whsec_..."])`` and friends; several secrets may be
given at once so a secret can be rotated without refusing deliveries signed with the old one.
"""

from __future__ import annotations

from ._base import DEFAULT_TOLERANCE, SignatureScheme
from .github import GitHub
from .hmac import HMAC
from .shopify import Shopify
from .slack import Slack
from .standard import StandardWebhooks
from .stripe import Stripe

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
