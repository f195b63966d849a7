"""The interaction log: the store on SQLite and PostgreSQL (filters, retention by age and size),
the client keeping failures and a sample of successes, redacted and cut, the DLQ pointing to the
failed call, and ``interlock interactions``."""

from __future__ import annotations

import json
from typing import Any

import pytest

import interlock
from interlock import Backoff, Client, InteractionLog, Redelivery, Retry
from interlock.cli import main
from interlock.errors import ConfigError, RetriesExhausted
from interlock.stores import (
    Attempt,
    Interaction,
    InteractionRetention,
    open_interactions,
)
from interlock.testbed import Faults, Testbed, TestbedConfig

FAST = Retry(attempts=3, backoff=Backoff(base=0.001, cap=0.002), budget=None)


def _item(i: int, *, at: float, failed: bool = False, tracking: str | None = None) -> Interaction:
    return Interaction(
        id=f"{i:024x}", at=at, upstream="api", method="GET", url=f"https://api.test/x/{i}", route="/x/{id}",
        status=503 if failed else 200, failed=failed, error="boom" if failed else None, tracking_id=tracking,
        correlation_id=f"evt_{i % 2}", duration=0.01, attempts=(Attempt(1, 503, None, 0.0, 0.004),),
        request_headers=(("Accept", "*/*"),), request_body=b'{"a":1}',
        response_headers=(("Content-Type", "application/json"),), response_body=b"\x00\xffbinary",
        response_truncated=True,
    )  # fmt: skip


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="InteractionLog.sample"):
        InteractionLog(store="x.db", sample=1.5)
    with pytest.raises(ConfigError, match="InteractionRetention.max_rows"):
        InteractionRetention(max_rows=0)
    with pytest.raises(ConfigError, match="InteractionLog.store"):
        Client("https://api.test", interactions=InteractionLog(store="mongodb://x"))


async def test_the_client_keeps_failures_redacted_and_cut_and_names_them_in_the_error(
    sqlite_path: str,
) -> None:
    log = InteractionLog(store=sqlite_path, max_body=64, json_paths=["$.card.number"])
    async with Testbed(TestbedConfig(faults=Faults(error_rates={503: 1.0}))) as tb:
        headers = {"Authorization": "Bearer sk_live_SECRET1"}
        async with Client(tb.url, retry=FAST, breaker=None, headers=headers, interactions=log) as client:
            body = {"card": {"number": "4242424242424242"}, "pad": "x" * 200}
            with pytest.raises(RetriesExhausted) as caught:
                await client.put("/customers/1", params={"api_key": "QSECRET2", "v": "1"}, json=body)
            kept = await client.interactions(failed=True)
    assert len(kept) == 1
    item = kept[0]
    assert caught.value.interaction_id == item.id
    assert f"interaction_id={item.id}" in str(caught.value)
    assert item.failed and item.status == 503 and item.method == "PUT" and item.route == "/customers/{id}"
    assert [(a.attempt, a.status) for a in item.attempts] == [(1, 503), (2, 503), (3, 503)]
    assert item.attempts[1].started >= item.attempts[0].started + item.attempts[0].duration
    assert item.tracking_id == caught.value.tracking_id and item.tracking_id
    assert item.correlation_id == caught.value.request_id
    text = json.dumps(item.to_json())
    for secret in ("sk_live_SECRET1", "QSECRET2", "4242424242424242"):
        assert secret not in text
    assert ("Authorization", "***") in item.request_headers
    assert "v=1" in item.url and "api_key=***" in item.url
    assert item.request_truncated and len(item.request_body) <= 64 + 8  # cut before redaction
    assert item.response_headers and item.response_body  # the upstream's error answer, as it came


async def test_successes_are_kept_only_in_the_sample(sqlite_path: str) -> None:
    import random

    async with Testbed(TestbedConfig()) as tb:
        async with Client(tb.url, interactions=InteractionLog(store=sqlite_path)) as client:
            for i in range(5):
                assert (await client.get(f"/customers/{i + 1}")).status == 200
            assert await client.interactions() == []
            assert (await client.get("/customers/999999")).status == 404  # an error answer: kept
            assert [i.status for i in await client.interactions()] == [404]
        log = InteractionLog(store=sqlite_path, sample=1.0, failures=False)
        async with Client(tb.url, interactions=log, rng=random.Random(1)) as client:
            for i in range(3):
                await client.get(f"/customers/{i + 1}")
            await client.get("/customers/999999")
            kept = await client.interactions(failed=False)
            assert len(kept) == 3 and not any(i.failed for i in kept)
            assert await client.interactions(failed=True) != []  # the first client's 404 only
            assert len(await client.interactions(failed=True)) == 1


async def test_a_client_without_a_log_says_how_to_get_one() -> None:
    async with Client("https://api.test") as client:
        with pytest.raises(ConfigError, match="interactions=InteractionLog"):
            await client.interactions()


async def test_the_dead_letter_names_the_failed_outbound_call(
    sql_store_url: str, tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    import os

    log_url = (
        sql_store_url
        if sql_store_url.startswith("postgres")
        else f"sqlite:///{os.path.join(str(tmp_path), 'log.db')}"
    )
    async with Testbed(TestbedConfig(faults=Faults(error_rates={502: 1.0}))) as tb:
        client = Client(tb.url, retry=FAST, breaker=None, interactions=InteractionLog(store=log_url))
        box = interlock.Inbox(store=sql_store_url, redelivery=Redelivery(attempts=1))
        box.internal_source("orders")

        @box.handler("orders")
        async def on_order(event: interlock.Event) -> None:
            await client.post("/customers", json={"name": "x"})

        try:
            await box.submit("orders", "created", {"n": 1}, id="evt_77")
            box.start_workers(concurrency=1)
            import asyncio

            for _ in range(500):
                if await box.dlq.count():
                    break
                await asyncio.sleep(0.02)
            dead = await box.dlq.inspect("evt_77")
            assert dead is not None and len(dead.interaction_ids) == 1
            [kept] = await client.interactions(correlation_id="evt_77")
            assert kept.id == dead.interaction_ids[0] and kept.status == 502
            capsys.readouterr()
            assert await asyncio.to_thread(main, ["dlq", "inspect", "evt_77", "--store", sql_store_url]) == 0
            assert (
                f"failed calls: {kept.id} (see: interlock interactions --id {kept.id})"
                in capsys.readouterr().out
            )
        finally:
            await box.aclose()
            await client.aclose()


def test_cli_shows_interactions_by_tracking_id(sqlite_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio

    async def fill() -> None:
        store = open_interactions(sqlite_path)
        await store.open()
        for i in range(3):
            await store.record(_item(i, at=1_700_000_000.0 + i, failed=i == 1, tracking=f"trk-{i}"))
        await store.aclose()

    asyncio.run(fill())
    assert main(["interactions", "--store", sqlite_path, "--tracking-id", "trk-1"]) == 0
    out = capsys.readouterr().out
    assert (
        _item(1, at=0).id in out
        and "FAILED" in out
        and "attempt 1: 503" in out
        and "tracking_id=trk-1" in out
    )
    assert main(["interactions", "--store", sqlite_path, "--succeeded", "--json"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert sorted(x["tracking_id"] for x in lines) == ["trk-0", "trk-2"]
    assert main(["interactions", "--store", sqlite_path, "--tracking-id", "nope"]) == 1


def test_cli_mistakes_are_one_line_and_exit_2(tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    import os

    missing = os.path.join(str(tmp_path), "missing.db")
    assert main(["interactions", "--store", missing]) == 2
    err = capsys.readouterr().err
    assert err.startswith("interlock interactions: error: no store at") and err.count("\n") == 1
    assert not os.path.exists(missing)
    assert main(["interactions", "--store", "mongodb://u:pw@h/x"]) == 2
    err = capsys.readouterr().err
    assert "accepted" in err and "pw" not in err
    with pytest.raises(SystemExit) as exited:
        main(["interactions", "--limit", "0"])
    assert exited.value.code == 2


def test_sync_client_reads_its_interaction_log(sqlite_path: str) -> None:
    from interlock import SyncClient
    from interlock.testbed import spawn_testbed

    with (
        spawn_testbed(TestbedConfig()) as tb,
        SyncClient(tb.url, interactions=InteractionLog(store=sqlite_path)) as api,
    ):
        assert api.get("/customers/999999").status == 404
        [kept] = api.interactions(failed=True)
    assert kept.status == 404 and kept.route


class _StuckStore:
    """An interaction store that never finishes a write (or fails each one): the client's calls
    must not wait for it, nor queue records without bound."""

    def __init__(self, *, fail: bool = False) -> None:
        import asyncio

        self.retention = InteractionRetention()
        self.fail = fail
        self.release = asyncio.Event()
        self.started = 0

    async def open(self) -> None:
        pass

    async def aclose(self) -> None:
        pass

    async def record(self, interaction: Interaction) -> None:
        self.started += 1
        if self.fail:
            raise ConnectionError("interaction store down: postgresql://u:s3cr3t@db/x")
        await self.release.wait()

    async def find(self, where: Any = None, *, limit: int = 100) -> list[Interaction]:
        return []

    async def count(self, where: Any = None) -> int:
        return 0

    async def prune(self, now: float | None = None) -> int:
        return 0


async def test_writes_in_flight_are_bounded_and_never_hold_a_call(caplog: pytest.LogCaptureFixture) -> None:
    store = _StuckStore()
    log = InteractionLog(store=store, max_pending=3)  # type: ignore[arg-type]
    async with Testbed(TestbedConfig()) as tb:
        client = Client(tb.url, interactions=log)
        for i in range(6):
            assert (await client.get(f"/customers/{900000 + i}")).status == 404  # each one kept
        recorder = client._interactions
        assert recorder is not None
        assert recorder.dropped == 3 and store.started == 3  # three in flight, three dropped
        store.release.set()
        await client.aclose()
    failing = _StuckStore(fail=True)
    async with (
        Testbed(TestbedConfig()) as tb,
        Client(tb.url, interactions=InteractionLog(store=failing)) as client,
    ):  # type: ignore[arg-type]
        assert (await client.get("/customers/999999")).status == 404
        await client._interactions.flush()  # type: ignore[union-attr]
        assert client._interactions.write_errors == 1  # type: ignore[union-attr]
    assert "not kept" in caplog.text and "s3cr3t" not in caplog.text
