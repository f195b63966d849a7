"""The dashboard: ``/ui`` on ``interlock serve``. One page where an operator sees every
upstream, webhook source and sync, with live figures, alert badges, failures grouped into
issues, and the DLQ to inspect, replay and purge.

``Monitor`` reads the running integration every few seconds (narrow inputs: the Clients, the
Inbox, the Syncs, the thresholds); ``dashboard_app(monitor, admin_token=...)`` serves the
pages; ``FailureFeed`` is the logging handler that hands failures to the monitor; ``Notifier``
posts issues and firing alerts to a webhook URL. Needs the ``service`` extra (Starlette, Jinja2).
"""

from __future__ import annotations

from ._app import dashboard_app
from ._monitor import FailureFeed, Monitor, RecentFailure
from ._notify import Notifier
from ._replay import ReplayJob, ReplayJobs

__all__ = ["FailureFeed", "Monitor", "Notifier", "RecentFailure", "ReplayJob", "ReplayJobs", "dashboard_app"]
