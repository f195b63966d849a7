"""schemathesis (property-based, from the admin API's own OpenAPI document) against the live
admin API: no generated request, valid or not, gets a server error."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import hypothesis
import pytest
import requests
import schemathesis
from schemathesis.checks import not_a_server_error

from interlock.service._openapi import openapi_document

from .conftest import ADMIN_TOKEN, Origin, serving

schema = schemathesis.openapi.from_dict(openapi_document())


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The service with one upstream, one source and one sync, served from a thread."""
    tmp = tmp_path_factory.mktemp("schemathesis")
    ready = threading.Event()
    stop = threading.Event()
    found: dict[str, str] = {}

    async def main() -> None:
        async with Origin() as origin:
            text = (
                "[server]\nadmin_token = '${ADMIN}'\n[store]\nurl = 'sqlite:///{db}'\n"
                f"[upstreams.crm]\nbase_url = '{origin.url}'\ncache = {{ routes = {{ '/p/{{id}}' = 60 }} }}\n"
                "rate_limit = { per_second = 50 }\n"
                "[upstreams.idle]\nbase_url = 'http://127.0.0.1:9'\nbreaker = false\n"  # never called: no figures yet
                f"[sources.billing]\nscheme = 'github'\nsecrets = ['s3cret']\nforward = '{origin.url}/in'\n"
                "[syncs.customers]\nupstream = 'crm'\npath = '/customers'\nhandler = 'json:dumps'\nevery = 3600\n"
            )
            async with serving(text, Path(tmp)) as (_, url):
                found["url"] = url
                ready.set()
                while not stop.is_set():
                    await asyncio.sleep(0.05)

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(30)
    try:
        yield found["url"]
    finally:
        stop.set()
        thread.join(30)


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


@schema.parametrize()
@hypothesis.settings(max_examples=25, deadline=None, suppress_health_check=list(hypothesis.HealthCheck))
def test_no_server_errors(case: schemathesis.Case, live: str, session: requests.Session) -> None:
    response = case.call(base_url=live, session=session, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert response.status_code < 500, (case.method, case.formatted_path, response.status_code, response.text[:300])
    case.validate_response(response, checks=[not_a_server_error])
