from __future__ import annotations

import inspect

import interlock.server as server


def test_all_is_documented_and_complete() -> None:
    assert len(set(server.__all__)) == len(server.__all__)  # ruff (RUF022) keeps it sorted
    for name in server.__all__:
        value = getattr(server, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert value.__doc__, name
    for module in (
        "ratelimit",
        "compression",
        "conditional",
        "fields",
        "accesslog",
        "security",
        "idempotency",
        "loader",
        "jobs",
        "pagination",
    ):
        sub = getattr(server, module)
        assert sub.__doc__
        assert set(sub.__all__) <= set(server.__all__), module
