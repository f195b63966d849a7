"""``interlock alerts``: the thresholds as a table and as a Prometheus rules file, from the
defaults or a config file's ``[alerts]`` section; a bad section is one line and exit 2."""

from __future__ import annotations

import json
import re
from pathlib import Path

from .test_mistakes import interlock_cli


def rules_of(text: str) -> dict[str, dict[str, str]]:
    """alert name -> its expr and severity, read from the printed YAML (one scalar a line)."""
    found: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in text.splitlines():
        if m := re.fullmatch(r"\s+- alert: (\w+)", line):
            current = found.setdefault(m.group(1), {})
        elif m := re.fullmatch(r"\s+(expr|severity|summary|for): (.+)", line):
            value = m.group(2)
            current[m.group(1)] = json.loads(value) if value.startswith('"') else value
    return found


def test_prometheus_rules_carry_the_default_thresholds(tmp_path: Path) -> None:
    done = interlock_cli("alerts", "--prometheus-rules", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("groups:\n  - name: interlock\n    rules:\n")
    rules = rules_of(done.stdout)
    assert len(rules) == 10  # five rules, a warning and a critical alert each
    p95 = rules["InterlockUpstreamP95"]
    assert p95["severity"] == "critical" and p95["for"] == "5m"
    assert p95["expr"].startswith("histogram_quantile(0.95, sum by (upstream, le)")
    assert p95["expr"].endswith(" > 0.5")
    assert rules["InterlockUpstreamP95Warning"]["expr"].endswith(" > 0.4")
    assert rules["InterlockCacheHitRate"]["expr"] == "interlock_cache_hit_ratio < 0.9"
    assert rules["InterlockErrorRate"]["summary"] == "upstream error rate above 1 %"


def test_thresholds_come_from_the_alerts_section(tmp_path: Path) -> None:
    config = tmp_path / "interlock.toml"
    config.write_text(
        "[alerts.upstream_p95]\nfiring = 0.8\nwarning = 0.6\n[alerts.error_rate]\nfiring = 0.05\n"
    )
    done = interlock_cli("alerts", "--prometheus-rules", "-c", str(config), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rules = rules_of(done.stdout)
    assert rules["InterlockUpstreamP95"]["expr"].endswith(" > 0.8")
    assert rules["InterlockUpstreamP95Warning"]["expr"].endswith(" > 0.6")
    assert rules["InterlockErrorRate"]["expr"].endswith(" > 0.05")
    assert rules["InterlockProcessingP95"]["expr"].endswith(" > 5")  # untouched: the default
    flat = tmp_path / "flat.toml"  # interlock.toml's own spelling: one firing level per key
    flat.write_text("[alerts]\np95_above = 0.3\ncache_hit_rate_below = 0.8\n")
    done = interlock_cli("alerts", "--prometheus-rules", "-c", str(flat), cwd=tmp_path)
    rules = rules_of(done.stdout)
    assert rules["InterlockUpstreamP95"]["expr"].endswith(" > 0.3")
    assert rules["InterlockUpstreamP95Warning"]["expr"].endswith(" > 0.3")  # the default 0.4 would come after
    assert rules["InterlockCacheHitRate"]["expr"].endswith(" < 0.8")
    assert rules["InterlockCacheHitRateWarning"]["expr"].endswith(" < 0.95")  # still reached first
    table = interlock_cli("alerts", "-c", str(config), cwd=tmp_path)
    assert table.returncode == 0 and "upstream_p95" in table.stdout and "above 0.8" in table.stdout


def test_a_bad_alerts_section_is_one_line_and_exit_2(tmp_path: Path) -> None:
    cases = {
        "[alerts.p95]\nfiring = 1\n": "Thresholds.p95: is not a rule",
        "[alerts.upstream_p95]\nwarning = 2.0\n": "warning must be <= firing",
        "[alerts]\nupstream_p95 = 3\n": "must be a table of warning, firing, min_samples",
        "[alerts]\np95_above = 'fast'\n": "Thresholds.p95_above: must be a number",
        "alerts = 3\n": "[alerts] must be a table",
        "[alerts\n": "not valid TOML",
    }
    for i, (text, message) in enumerate(cases.items()):
        config = tmp_path / f"c{i}.toml"
        config.write_text(text)
        done = interlock_cli("alerts", "-c", str(config), cwd=tmp_path)
        assert done.returncode == 2, (text, done.stdout)
        assert "Traceback" not in done.stderr
        assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    missing = interlock_cli("alerts", "-c", str(tmp_path / "nope.toml"), cwd=tmp_path)
    assert missing.returncode == 2 and "cannot read" in missing.stderr
