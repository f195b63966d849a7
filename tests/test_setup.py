"""What a new user meets right after installing: the base install runs every ``interlock``
command (extras only for the backends a command names), the README lists the extras and what
needs each, and the import paths the README shows exist."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import interlock

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
# Extras that install tools for this repository, not features of the package.
DEVELOPMENT = {"test", "bench", "docs", "lint", "dev", "all"}
# Where a distribution's import name differs from its name.
IMPORT_NAMES = {"nats-py": "nats", "backports.zstd": "backports.zstd"}

BLOCKER = """
import importlib.abc, sys
BLOCKED = {blocked!r}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name in BLOCKED or name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (not in the base install)", name=name)
        return None
sys.meta_path.insert(0, Block())
from interlock.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _distribution(requirement: str) -> str:
    return re.split(r"[\[<>=;! ]", requirement, maxsplit=1)[0].strip()


def feature_extras() -> dict[str, list[str]]:
    extras = PYPROJECT["project"]["optional-dependencies"]
    return {name: [_distribution(r) for r in reqs] for name, reqs in extras.items() if name not in DEVELOPMENT}


def _base_only(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    base = {_distribution(r).lower() for r in PYPROJECT["project"]["dependencies"]}
    blocked = sorted(
        IMPORT_NAMES.get(d, d.lower().replace("-", "_"))
        for reqs in feature_extras().values()
        for d in reqs
        if d.lower() not in base
    )
    return subprocess.run(
        [sys.executable, "-c", BLOCKER.format(blocked=blocked), *args],
        cwd=cwd, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_the_base_install_runs_every_command(tmp_path: Path) -> None:
    from interlock.stores.queue_sqlite import SQLiteQueue

    async def create() -> None:
        async with SQLiteQueue(f"sqlite:///{tmp_path / 'interlock.db'}"):
            pass

    asyncio.run(create())
    (tmp_path / "jobs.py").write_text(
        "import interlock\n"
        "client = interlock.Client('http://127.0.0.1:9')\n"
        "jobs = [interlock.Sync('customers', source=interlock.SyncSource(client, '/customers'),\n"
        "                       destination=lambda record: None, store='sqlite:///interlock.db')]\n"
    )
    for args in (
        ["dlq", "list", "--store", "interlock.db"],
        ["sync", "status", "customers", "--app", "jobs:jobs"],
        ["demo", "--reads", "12", "--writes", "2", "--callers", "2", "--outage", "0"],
        ["testbed", "--help"],
    ):
        done = _base_only(*args, cwd=tmp_path)
        assert done.returncode == 0 and "Traceback" not in done.stderr, (args, done.stderr)
    # A backend from an extra: the command names the extra to install, on one line.
    done = _base_only("dlq", "list", "--store", "postgresql://postgres@127.0.0.1:5432/test", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "pip install 'interlock[postgres]'" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_the_readme_lists_every_extra_and_how_to_run_the_benchmarks() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Install", 1)[1].split("\n## ", 1)[0]
    for extra in feature_extras():
        assert f"`{extra}`" in section, extra
    assert "'.[bench]'" in readme and "benchmarks/" in readme
    assert (ROOT / "LICENSE").exists()


def test_the_import_paths_the_readme_shows() -> None:
    code = "from interlock.signatures import Stripe, GitHub, HMAC; import interlock; print(Stripe is interlock.signatures.Stripe)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "True"
    text = interlock.metrics.render()
    assert isinstance(text, str) and "# HELP interlock_client_requests" in text  # text, as the README says
    assert interlock.metrics.CONTENT_TYPE.startswith("text/plain")
