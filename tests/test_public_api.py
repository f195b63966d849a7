"""The public surface: what ``interlock`` re-exports, and what importing it costs."""

from __future__ import annotations

import subprocess
import sys

import interlock


def test_all_is_sorted_complete_and_public() -> None:
    assert interlock.__all__ == sorted(interlock.__all__)
    for name in interlock.__all__:
        assert hasattr(interlock, name), name
        assert not name.startswith("_"), name


def test_every_exported_class_has_a_docstring() -> None:
    missing = [
        name
        for name in interlock.__all__
        if isinstance(getattr(interlock, name), type) and not getattr(interlock, name).__doc__
    ]
    assert missing == []


def test_core_import_stays_light() -> None:
    """Backends are optional extras: importing interlock must not pull them in."""
    heavy = ["asyncpg", "redis", "starlette", "uvicorn", "psycopg", "aio_pika", "nats", "rich", "pydantic"]
    code = f"import sys, interlock; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_errors_module_documents_its_tree() -> None:
    doc = interlock.errors.__doc__ or ""
    for name in interlock.errors.__all__:
        assert name in doc, f"{name} missing from the tree drawn in interlock.errors"


def test_no_name_has_two_meanings() -> None:
    """``interlock.Timeout`` is the client's limits; the error an attempt raises is ``TimedOut``."""
    assert set(interlock.__all__).isdisjoint(interlock.errors.__all__)
    assert not issubclass(interlock.Timeout, BaseException)
    assert issubclass(interlock.errors.TimedOut, TimeoutError)
    assert issubclass(interlock.errors.DeadlineExceeded, interlock.errors.TimedOut)


def test_testing_helpers_are_exported_and_documented() -> None:
    import inspect

    import interlock.testing as testing

    assert testing.__all__ == sorted(testing.__all__)
    for name in ("MockTransport", "set_testing", "FakeClock", "respond"):
        assert name in testing.__all__, name
    undocumented = [
        name
        for name in testing.__all__
        if (inspect.isclass(getattr(testing, name)) or inspect.isfunction(getattr(testing, name)))
        and not getattr(testing, name).__doc__
    ]
    assert undocumented == []
