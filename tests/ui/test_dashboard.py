"""The dashboard as an operator uses it, in real headless Chromium: login, live figures that
follow the traffic, a badge that fires, a DLQ replay that applies the event, grouped issues,
no JavaScript errors. Screenshots of the overview and the DLQ go to ``artifacts/ui/``."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import interlock
from interlock.testbed import Faults, Latency

from .conftest import TOKEN, Service

pytestmark = pytest.mark.timeout(120)


async def until(predicate: Any, timeout: float = 20.0, every: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if await predicate():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {predicate.__name__}")
        await asyncio.sleep(every)


async def open_page(browser: Any) -> tuple[Any, list[str]]:
    """A fresh page, collecting console errors and uncaught exceptions."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return page, errors


async def login(page: Any, service: Service, path: str = "/ui") -> None:
    await page.goto(service.url + path)
    await page.fill('input[name="token"]', TOKEN)
    await page.click('button[type="submit"]')
    await page.wait_for_load_state("networkidle")


async def test_without_a_session_every_page_redirects_to_the_login_form(
    service: Service, browser: Any
) -> None:
    page, errors = await open_page(browser)
    await page.goto(service.url + "/ui/dlq")
    assert re.search(r"/ui/login\?next=/ui/dlq$", page.url), page.url
    await page.fill('input[name="token"]', "not-the-token")
    await page.click('button[type="submit"]')
    assert await page.locator('[role="alert"]').inner_text() == "That is not the admin token."
    assert errors == ["Failed to load resource: the server responded with a status of 401 (Unauthorized)"]
    errors.clear()  # that 401 was the point; from here on, none
    async with aiohttp.ClientSession() as http:  # the API behind the page: 401, no redirect
        async with http.get(service.url + "/ui/api/overview") as response:
            assert response.status == 401
        async with http.post(service.url + "/ui/dlq/purge", data={"csrf": "x"}) as response:
            assert response.status == 403  # no session: no state change
    await page.fill('input[name="token"]', TOKEN)
    await page.click('button[type="submit"]')
    await page.wait_for_load_state("networkidle")
    assert page.url.endswith("/ui/dlq")
    cookies = {c["name"]: c for c in await page.context.cookies()}
    session = cookies["interlock_session"]
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    assert TOKEN not in session["value"]
    assert errors == []


async def test_live_figures_follow_the_traffic_and_the_p95_badge_fires(
    service: Service, browser: Any, artifacts: Path
) -> None:
    page, errors = await open_page(browser)
    await login(page, service)
    row = page.locator('tr[data-upstream="crm"]')
    pace = row.locator('[data-field="pace"]')

    async def calls_flowing() -> bool:
        text = await pace.inner_text()
        return text not in ("\u2013", "0.0")

    await until(calls_flowing)
    badge = row.locator('.badge[data-rule="upstream_p95"]')

    async def p95_ok() -> bool:
        return "ok" in (await badge.get_attribute("class") or "")

    await until(p95_ok)
    await page.screenshot(path=str(artifacts / "overview.png"), full_page=True)

    # Traffic stops: the calls per second fall to zero without a reload.
    service.traffic_paused.set()

    async def calls_stopped() -> bool:
        return await pace.inner_text() == "0.0"

    await until(calls_stopped)  # the test's window is 3 s long
    # Latency raised above the threshold (p95 fires above 200 ms here): the badge turns firing.
    service.tb.configure(faults=Faults(latency=Latency("fixed", ms=300)))
    service.traffic_paused.clear()

    async def p95_firing() -> bool:
        return "firing" in (await badge.get_attribute("class") or "")

    await until(p95_firing)
    assert re.fullmatch(r"\d+ ms", await row.locator('[data-field="p95"]').inner_text())
    await page.screenshot(path=str(artifacts / "overview-firing.png"), full_page=True)
    assert await page.locator('svg[data-chart="crm"] path').count() == 4
    assert errors == []


async def test_a_replay_button_empties_the_dlq_and_the_event_is_applied(
    service: Service, browser: Any, artifacts: Path
) -> None:
    await service.inbox.submit("billing", "invoice.paid", {"amount": 42}, id="evt_ui_1")

    async def dead() -> bool:
        return await service.inbox.dlq.count(source="billing") == 1

    await until(dead)
    page, errors = await open_page(browser)
    await login(page, service, "/ui/dlq")
    letter = page.locator('tr[data-letter="evt_ui_1"]')
    assert "RuntimeError: ledger service down" in await letter.locator(".message").inner_text()
    await page.screenshot(path=str(artifacts / "dlq.png"), full_page=True)

    # The event page shows its body and every attempt's error.
    await letter.locator("a").click()
    assert '"amount": 42' in await page.locator("pre").nth(1).inner_text()
    assert "ledger service down" in await page.locator("ol.attempts").inner_text()

    service.broken = False  # the downstream is fixed: the replay applies it
    await page.click("button.replay")
    await page.wait_for_load_state("networkidle")
    assert "evt_ui_1 replayed" in await page.locator(".note").inner_text()

    async def applied() -> bool:
        return service.applied == ["evt_ui_1"]

    await until(applied)
    assert await service.inbox.dlq.count() == 0
    await page.reload()
    assert await page.locator("#dlq-total").inner_text() == "0"
    assert errors == []


async def test_bulk_replay_counts_first_then_shows_progress(service: Service, browser: Any) -> None:
    for i in range(5):
        await service.inbox.submit("billing", "invoice.paid", {"n": i}, id=f"evt_bulk_{i}")

    async def dead() -> bool:
        return await service.inbox.dlq.count(source="billing") == 5

    await until(dead)
    page, errors = await open_page(browser)
    await login(page, service, "/ui/dlq?source=billing")
    await page.click('button[name="dry_run"]')
    assert "A replay would take 5 dead letters." in await page.locator("#dry-run-count").inner_text()
    assert await service.inbox.dlq.count() == 5  # a dry run changes nothing
    service.broken = False
    await page.click('button:has-text("Replay them")')

    async def finished() -> bool:
        return await page.locator("#job-state").inner_text() == "succeeded"

    await until(finished)
    assert await page.locator("#job-progress").get_attribute("value") == "5"
    await until(lambda: _true(len(service.applied) == 5))
    assert errors == []


async def test_purge_needs_the_count_typed(service: Service, browser: Any) -> None:
    await service.inbox.submit("billing", "invoice.paid", {}, id="evt_purge")

    async def dead() -> bool:
        return await service.inbox.dlq.count() == 1

    await until(dead)
    page, errors = await open_page(browser)
    await login(page, service, "/ui/dlq")
    await page.click("button.danger")
    assert await page.locator("#purge-count").inner_text() == "1"
    await page.fill('input[name="confirm"]', "2")
    await page.click("button.danger")
    await page.wait_for_load_state("networkidle")
    assert await page.locator("#purge-count").inner_text() == "1"  # asked again (a 409)
    assert await service.inbox.dlq.count() == 1  # the wrong number purges nothing
    await page.fill('input[name="confirm"]', "1")
    await page.click("button.danger")
    await page.wait_for_load_state("networkidle")
    assert "purged 1" in await page.locator(".note").inner_text()
    assert await service.inbox.dlq.count() == 0
    # The one console line allowed is the browser's note of that 409 (logged when it is logged).
    assert [e for e in errors if "status of 409 (Conflict)" not in e] == []


async def test_a_thousand_identical_failures_are_one_issue(service: Service, browser: Any) -> None:
    service.traffic_paused.set()
    service.tb.configure(faults=Faults(error_rates={503: 1.0}))
    results = await asyncio.gather(
        *(service.client.get("/customers/7") for _ in range(1000)), return_exceptions=True
    )
    assert all(isinstance(r, interlock.errors.CallError) for r in results)
    issues = [i for i in service.monitor.groups.listing() if i.key.scope[0] == "upstream"]
    assert [(i.key.title, i.count) for i in issues] == [("crm GET /customers/{id}: RetriesExhausted", 1000)]

    page, errors = await open_page(browser)
    await login(page, service, "/ui/issues")
    rows = page.locator("#issues tbody tr")
    assert await rows.count() == 1
    assert await rows.locator('[data-field="count"]').inner_text() == "1000"
    await page.click('button[value="acknowledged"]')
    await page.wait_for_load_state("networkidle")
    assert "acknowledged" in await page.locator("#issues tbody tr .badge").inner_text()
    assert errors == []


async def _true(value: bool) -> bool:
    return value


async def test_usable_at_phone_width_and_in_dark_mode(service: Service, browser: Any, artifacts: Path) -> None:
    context = await browser.new_context(viewport={"width": 390, "height": 844}, color_scheme="dark")
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await login(page, service)
    await page.locator('tr[data-upstream="crm"] .badge').first.wait_for()
    # The page does not scroll sideways, and neither does any table: at phone width each row is
    # a card whose cells carry their column's heading.
    overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    wide = await page.evaluate(
        "Array.from(document.querySelectorAll('.scroll')).filter(e => e.scrollWidth > e.clientWidth + 1).length"
    )
    assert wide == 0
    p95 = page.locator('tr[data-upstream="crm"] [data-field="p95"]')
    assert await p95.get_attribute("data-label") == "p95"
    background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
    red, green, blue = (int(v) for v in re.findall(r"\d+", background)[:3])
    assert red + green + blue < 150, background  # the dark palette, not the light one
    await page.screenshot(path=str(artifacts / "overview-phone-dark.png"), full_page=True)
    await page.set_viewport_size({"width": 1280, "height": 900})  # wide again: a table again
    assert await page.evaluate("getComputedStyle(document.querySelector('#upstreams td')).display") == "table-cell"
    assert errors == []
