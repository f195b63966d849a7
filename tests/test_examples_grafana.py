"""``examples/grafana-dashboard.json`` and the alerting rules query only metrics Interlock
really exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

import interlock
from interlock.cli.alerts import prometheus_rules
from interlock.core.alerts import Thresholds
from interlock.testbed import Testbed, TestbedConfig

DASHBOARD = Path(__file__).parent.parent / "examples" / "grafana-dashboard.json"
SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("", "_sum", "_count")}


def exported_series(exposition: str) -> set[str]:
    """Every series name the exposition can hold, from its ``# TYPE`` lines."""
    names = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", exposition, flags=re.M):
        if kind == "counter":  # the TYPE line names the family, with or without _total
            names.add(name if name.endswith("_total") else name + "_total")
        names.update(name + s for s in SUFFIXES.get(kind, ("",)))
    return names


async def test_every_panel_queries_an_exported_metric(tmp_path: Path) -> None:
    inbox = interlock.Inbox(store=f"sqlite:///{tmp_path / 'inbox.db'}")
    inbox.source(
        "billing", interlock.signatures.StandardWebhooks("whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    )
    async with Testbed(TestbedConfig()) as tb, interlock.Client(tb.url, name="grafana-check") as api:
        await api.get("/customers/1")
        await inbox.refresh_stats()
        registry = CollectorRegistry()  # the inbox's metrics are opt-in: a registry of the test's own
        inbox.register_prometheus(registry)
        exposition = interlock.metrics.render() + generate_latest(registry).decode()
        exported = exported_series(exposition)
    await inbox.aclose()

    dashboard = json.loads(DASHBOARD.read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\binterlock_[a-z0-9_]+", target["expr"])
    }
    assert len(queried) >= 10
    assert queried - exported == set()
    # The Prometheus rules `interlock alerts --prometheus-rules` prints query exported metrics too.
    ruled = set(re.findall(r"\binterlock_[a-z0-9_]+", prometheus_rules(Thresholds())))
    assert len(ruled) == 5 and ruled - exported == set()
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))  # Grafana needs distinct panel ids
