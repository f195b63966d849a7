"""Correlation and request ids."""

from __future__ import annotations

import os

import pytest

import interlock
from interlock._ids import new_id


def test_ids_are_unique_and_fixed_width() -> None:
    ids = {new_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    assert {len(i) for i in ids} == {24}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_workers_do_not_repeat_each_others_ids() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id and leave at once
        os.write(write, new_id().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.waitpid(pid, 0)
    assert child and child != new_id()


def test_correlation_id_scopes_nest_and_reset() -> None:
    assert interlock.current_correlation_id() is None
    with interlock.correlation_id("outer"):
        with interlock.correlation_id() as inner:
            assert interlock.current_correlation_id() == inner != "outer"
        assert interlock.current_correlation_id() == "outer"
    assert interlock.current_correlation_id() is None
