"""Plant known bugs one at a time in a scratch copy of the repository and check that the suite
notices each one (issue #19: "each of these planted bugs must fail the suite").

Each bug is a single textual substitution in one source file and names the tests that must
catch it. For each bug the script copies ``src/``, ``tests/`` and ``pyproject.toml`` to a
scratch directory, plants the bug, runs the named tests against the copy (``PYTHONPATH`` puts
the copy's ``src`` first, child processes included) and reports ``killed`` (a test failed, as
it must) or ``SURVIVED``. A bug whose anchor text is no longer in the source is reported
``cannot plant``: update its anchor. The unmodified copy runs the same tests first (``--no-baseline`` skips it): a
test that fails without the bug proves nothing.

    .venv/bin/python tools/planted_bugs.py            # every bug
    .venv/bin/python tools/planted_bugs.py --list
    .venv/bin/python tools/planted_bugs.py signature-prefix sqlite-synchronous-off

Exit status 0 when every bug was killed. Not run in CI (a few minutes); run it after changing
the code or the tests these bugs live in.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Bug:
    """One planted bug: replace ``old`` (exactly once) by ``new`` in ``path``."""

    name: str
    what: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


BUGS = [
    Bug(
        "checkpoint-only-at-end",
        "the sync checkpoint is never saved before the end of a poll (a crash re-reads everything)",
        "src/interlock/sync/_poll.py",
        "if self._saving is None and self.schedule.due(self._clock.monotonic()):",
        "if False and self._saving is None and self.schedule.due(self._clock.monotonic()):",
        ("tests/sync/test_checkpoint.py", "tests/sync/test_crash.py"),
    ),
    Bug(
        "watermark-past-in-flight-core",
        "the watermark advances past records still in flight (core.checkpoint), judged by the "
        "job-level tests only",
        "src/interlock/core/checkpoint.py",
        "while done and (lowest_pending is None or done[0] < lowest_pending):",
        "while done:",
        ("tests/sync/test_checkpoint.py", "tests/sync/test_crash.py"),
    ),
    Bug(
        "watermark-past-in-flight-poll",
        "the poll moves its checkpoint to the last record completed, in flight ones below it or not",
        "src/interlock/sync/_poll.py",
        "        if tracked and self.watermark.complete(record.position):\n",
        "        if tracked and (self.watermark.complete(record.position) or True):\n"
        "            self.watermark.position = max(self.watermark.position or record.position, record.position)\n",
        ("tests/sync/test_checkpoint.py", "tests/sync/test_crash.py"),
    ),
    Bug(
        "sqlite-synchronous-off",
        "SQLite opened with synchronous=OFF (commits acknowledged before they are on disk)",
        "src/interlock/stores/_sqlite.py",
        'conn.execute(f"PRAGMA synchronous={synchronous}")',
        'conn.execute("PRAGMA synchronous=OFF")',
        ("tests/contract/test_backends_contract.py",),
    ),
    Bug(
        "sqlite-no-wal",
        "SQLite left in rollback-journal mode (readers block the writer)",
        "src/interlock/stores/_sqlite.py",
        "mode = _switch_to_wal(conn, path, busy_timeout)",
        "mode = _switch_to_wal(conn, path, busy_timeout)\n"
        '    mode = conn.execute("PRAGMA journal_mode=DELETE").fetchone()[0] and "wal"',
        ("tests/contract/test_backends_contract.py",),
    ),
    Bug(
        "429-pauses-one-call",
        "a 429 no longer pauses the whole upstream: only the call that got it waits",
        "src/interlock/client/policies/ratelimit.py",
        "left = await self.store.pause(state.bucket, advice.pause, rate=rate, capacity=capacity)",
        "left = advice.pause",
        ("tests/client/test_ratelimit.py",),
    ),
    Bug(
        "signature-prefix",
        "signatures compared on their first 16 bytes only",
        "src/interlock/inbox/signatures/_base.py",
        "found |= hmac.compare_digest(e, g)",
        "found |= hmac.compare_digest(e[:16], g[:16])",
        ("tests/inbox/test_signatures.py",),
    ),
    Bug(
        "signature-truncated-accepted",
        "a received signature accepted when it is a prefix of the expected one (truncated)",
        "src/interlock/inbox/signatures/_base.py",
        "found |= hmac.compare_digest(e, g)",
        "found |= bool(g) and e.startswith(g)",
        ("tests/inbox/test_signatures.py",),
    ),
    Bug(
        "batch-failure-fails-members",
        "a failed list call fails its members instead of letting each fall back to its own call",
        "src/interlock/client/policies/batch.py",
        "        if items is None or response is None:\n            for m in members:\n"
        "                _settle(m, _FALLBACK)\n",
        "        if items is None or response is None:\n            for m in members:\n"
        "                m.future.set_exception(RuntimeError('the batch failed'))\n",
        ("tests/client/test_batch.py",),
    ),
]


def scratch_copy(repo: Path) -> Path:
    """A fresh temporary copy of ``repo``'s sources, tests and project file."""
    root = Path(tempfile.mkdtemp(prefix="interlock-planted-"))
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
    for name in ("src", "tests"):
        shutil.copytree(repo / name, root / name, ignore=ignore)
    shutil.copy2(repo / "pyproject.toml", root / "pyproject.toml")
    return root


def run_tests(root: Path, tests: tuple[str, ...]) -> tuple[bool, str]:
    """Run ``tests`` against the copy at ``root``: (passed, the last lines of the output)."""
    present = [t for t in tests if (root / t.split("::")[0]).exists()]
    if not present:
        return True, "no tests ran: none of the named test files is in this tree"
    tests = tuple(present)
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    summary = [line for line in proc.stdout.splitlines() if " passed" in line or " failed" in line]
    return proc.returncode == 0, "\n".join([*lines, *summary[-1:]])


def plant(root: Path, bug: Bug) -> str | None:
    """Plant ``bug`` in the copy; the reason when it cannot be planted."""
    target = root / bug.path
    text = target.read_text()
    found = text.count(bug.old)
    if found != 1:
        return f"anchor found {found} times in {bug.path}"
    target.write_text(text.replace(bug.old, bug.new))
    return None


def main() -> int:
    """Plant the chosen bugs one by one and report each verdict; 0 when all were killed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="bugs to plant (default: all)")
    parser.add_argument("--list", action="store_true", help="list the bugs and exit")
    parser.add_argument("--no-baseline", action="store_true", help="skip the run without bugs")
    parser.add_argument("-v", "--verbose", action="store_true", help="print the test output's tail")
    parser.add_argument(
        "--repo", type=Path, default=REPO, help="the tree to copy (another worktree: its tests judged)"
    )
    args = parser.parse_args()
    if args.list:
        for bug in BUGS:
            print(f"{bug.name:32} {bug.what}\n{'':32} caught by: {', '.join(bug.tests)}")
        return 0
    unknown = set(args.names) - {b.name for b in BUGS}
    if unknown:
        parser.error(f"unknown bugs: {', '.join(sorted(unknown))} (see --list)")
    chosen = [b for b in BUGS if not args.names or b.name in args.names]

    if not args.no_baseline:
        tests = tuple(dict.fromkeys(t for b in chosen for t in b.tests))
        root = scratch_copy(args.repo)
        try:
            ok, tail = run_tests(root, tests)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        if not ok:
            print(f"baseline: the tests fail without any planted bug:\n{tail}")
            return 2
        print(f"baseline: {len(tests)} test files pass without planted bugs")

    failures = 0
    for bug in chosen:
        root = scratch_copy(args.repo)
        started = time.monotonic()
        try:
            problem = plant(root, bug)
            if problem is not None:
                verdict, tail = f"cannot plant ({problem})", ""
                failures += 1
            else:
                passed, tail = run_tests(root, bug.tests)
                verdict = "SURVIVED" if passed else "killed"
                failures += passed
        finally:
            shutil.rmtree(root, ignore_errors=True)
        print(f"{verdict:10} {bug.name:32} {time.monotonic() - started:5.1f}s  {bug.what}")
        if args.verbose and tail:
            print("    " + tail.replace("\n", "\n    "))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
