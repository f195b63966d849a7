"""Single records, batch reads, writes, idempotency, headers, compression -- over loopback."""

from __future__ import annotations

import gzip
import json

import aiohttp
import brotli
import pytest

from interlock.testbed import Faults, Testbed, TestbedConfig


async def test_get_record_with_validators_and_304(session: aiohttp.ClientSession) -> None:
    async with Testbed(TestbedConfig(records=20, max_age={"products": 60})) as tb:
        async with session.get(f"{tb.url}/customers/3") as r:
            assert r.status == 200
            body = await r.json()
            etag = r.headers["ETag"]
            last_modified = r.headers["Last-Modified"]
            assert r.headers["Cache-Control"] == "no-cache"
        assert body == tb.data.get("customers", 3)
        assert body["id"] == 3 and body["version"] == 1
        assert body["updated_at"].endswith("Z")
        assert etag.startswith('"') and not etag.startswith("W/")

        async with session.get(f"{tb.url}/customers/3", headers={"If-None-Match": etag}) as r:
            assert r.status == 304
            assert await r.read() == b""
            assert r.headers["ETag"] == etag
        weak_list = f'"other", W/{etag}'
        async with session.get(f"{tb.url}/customers/3", headers={"If-None-Match": weak_list}) as r:
            assert r.status == 304
        async with session.get(f"{tb.url}/customers/3", headers={"If-None-Match": '"nope"'}) as r:
            assert r.status == 200
        ims = {"If-Modified-Since": last_modified}
        async with session.get(f"{tb.url}/customers/3", headers=ims) as r:
            assert r.status == 304
        async with session.get(f"{tb.url}/products/3") as r:
            assert r.headers["Cache-Control"] == "max-age=60"

        # A change moves the validators: the old ETag no longer matches.
        tb.touch("customers", [3])
        async with session.get(f"{tb.url}/customers/3", headers={"If-None-Match": etag}) as r:
            assert r.status == 200
            assert r.headers["ETag"] != etag
            assert (await r.json())["version"] == 2
        async with session.get(f"{tb.url}/customers/3", headers=ims) as r:
            assert r.status == 200

        counters = tb.counters
        assert counters.not_modified == 3
        assert counters.route("GET /customers/{id}") == {"200": 4, "304": 3}


async def test_not_found_shapes(session: aiohttp.ClientSession) -> None:
    async with Testbed(TestbedConfig(records=5)) as tb:
        async with session.get(f"{tb.url}/customers/99") as r:
            assert r.status == 404
            assert await r.json() == {"error": "not found", "id": 99}
        async with session.get(f"{tb.url}/widgets/1") as r:
            assert r.status == 404
        async with session.get(f"{tb.url}/widgets") as r:
            assert r.status == 404
        async with session.patch(f"{tb.url}/customers/1", json={}) as r:
            assert r.status == 405
            assert "PUT" in r.headers["Allow"]


async def test_list_by_ids_skips_missing_and_caps(session: aiohttp.ClientSession) -> None:
    async with Testbed(TestbedConfig(records=10, max_ids=5)) as tb:
        async with session.get(f"{tb.url}/products", params={"ids": "3,1,999,3"}) as r:
            assert r.status == 200
            data = (await r.json())["data"]
        assert [d["id"] for d in data] == [3, 1]
        assert data[0] == tb.data.get("products", 3)
        async with session.get(f"{tb.url}/products", params={"ids": "1,2,3,4,5,6"}) as r:
            assert r.status == 400
            assert "at most 5" in (await r.json())["error"]
        async with session.get(f"{tb.url}/products", params={"ids": "1,x"}) as r:
            assert r.status == 400
        counters = tb.counters
        assert counters.batch_calls == 3
        assert counters.ids_requested == 4  # the two refused calls asked for nothing served


async def test_writes_put_post_delete(session: aiohttp.ClientSession) -> None:
    async with Testbed(TestbedConfig(records=5)) as tb:
        async with session.put(f"{tb.url}/customers/2", json={"name": "Renamed", "id": 77}) as r:
            assert r.status == 200
            body = await r.json()
        assert body["name"] == "Renamed" and body["id"] == 2 and body["version"] == 2
        assert tb.data.get("customers", 2)["name"] == "Renamed"  # type: ignore[index]

        async with session.put(f"{tb.url}/customers/50", json={"name": "New"}) as r:
            assert r.status == 201
            assert r.headers["Location"] == "/customers/50"
        async with session.post(f"{tb.url}/customers", json={"name": "Posted"}) as r:
            assert r.status == 201
            posted = await r.json()
        assert posted["id"] == 51

        async with session.delete(f"{tb.url}/customers/2") as r:
            assert r.status == 204
        async with session.get(f"{tb.url}/customers/2") as r:
            assert r.status == 404
        async with session.delete(f"{tb.url}/customers/2") as r:
            assert r.status == 404
        # Re-created after a delete, the version continues: an old ETag cannot match it.
        async with session.put(f"{tb.url}/customers/2", json={"name": "Back"}) as r:
            assert r.status == 201
            assert (await r.json())["version"] == 3

        async with session.put(f"{tb.url}/customers/3", data=b"{not json") as r:
            assert r.status == 400
        async with session.put(f"{tb.url}/customers/3", json=[1, 2]) as r:
            assert r.status == 400

        counters = tb.counters
        assert counters.writes_applied == 5
        assert counters.applied_writes == {
            ("customers", 2): 3,
            ("customers", 50): 1,
            ("customers", 51): 1,
        }


async def test_idempotent_put_is_applied_once(session: aiohttp.ClientSession) -> None:
    async with Testbed(TestbedConfig(records=10)) as tb:
        headers = {"Idempotency-Key": "key-1"}
        url = f"{tb.url}/orders/4"
        async with session.put(url, json={"status": "paid"}, headers=headers) as r:
            assert r.status == 200
            first = await r.read()
            assert "Idempotent-Replayed" not in r.headers
        async with session.put(url, json={"status": "paid"}, headers=headers) as r:
            assert r.status == 200
            assert await r.read() == first
            assert r.headers["Idempotent-Replayed"] == "true"
        async with session.put(url, json={"status": "refunded"}, headers=headers) as r:
            assert r.status == 422  # same key, different request
        counters = tb.counters
        assert counters.applied_writes == {("orders", 4): 1}
        assert counters.idempotent_replays == 1
        assert tb.data.get("orders", 4)["version"] == 2  # type: ignore[index]


async def test_lost_response_then_retry_with_key_replays() -> None:
    config = TestbedConfig(records=5, faults=Faults(lost_response_rate=1.0))
    async with Testbed(config) as tb, aiohttp.ClientSession() as session:
        headers = {"Idempotency-Key": "lost-1"}
        with pytest.raises(aiohttp.ClientError):
            async with session.post(f"{tb.url}/customers", json={"name": "x"}, headers=headers):
                pass
        assert tb.counters.lost_responses == 1
        tb.configure(faults=None)
        async with session.post(f"{tb.url}/customers", json={"name": "x"}, headers=headers) as r:
            assert r.status == 201
            assert r.headers["Idempotent-Replayed"] == "true"
            created = await r.json()
        assert tb.counters.applied_writes == {("customers", created["id"]): 1}


async def test_tracking_id_and_request_id(session: aiohttp.ClientSession) -> None:
    async with Testbed(TestbedConfig(records=3, tracking_header="Trackingid")) as tb:
        seen = set()
        for i in range(5):
            headers = {"X-Request-ID": f"req-{i}"}
            async with session.get(f"{tb.url}/customers/1", headers=headers) as r:
                seen.add(r.headers["Trackingid"])
                assert r.headers["X-Request-ID"] == f"req-{i}"
        assert len(seen) == 5
        async with session.get(f"{tb.url}/_testbed/requests") as r:
            recent = (await r.json())["requests"]
        assert [q["x-request-id"] for q in recent] == [f"req-{i}" for i in range(5)]
        assert {q["status"] for q in recent} == {200}
    async with Testbed(TestbedConfig(records=3, tracking_header=None)) as tb:
        tb.configure(tracking_header=None)
        async with session.get(f"{tb.url}/customers/1") as r:
            assert "Trackingid" not in r.headers


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
async def test_compression(coding: str) -> None:
    if coding == "zstd":
        zstandard = pytest.importorskip("zstandard")
    async with (
        Testbed(TestbedConfig(records=60, compress_min_bytes=1024)) as tb,
        aiohttp.ClientSession(auto_decompress=False) as raw,
    ):
        identity = {"Accept-Encoding": "identity"}
        async with raw.get(f"{tb.url}/customers?limit=50", headers=identity) as r:
            plain = await r.read()
            assert "Content-Encoding" not in r.headers
        assert len(plain) > 1024
        async with raw.get(f"{tb.url}/customers?limit=50", headers={"Accept-Encoding": coding}) as r:
            assert r.headers["Content-Encoding"] == coding
            assert r.headers["Vary"] == "Accept-Encoding"
            packed = await r.read()
        if coding == "gzip":
            unpacked = gzip.decompress(packed)
        elif coding == "br":
            unpacked = brotli.decompress(packed)
        else:
            unpacked = zstandard.ZstdDecompressor().decompress(packed)
        assert len(packed) < len(plain)
        assert json.loads(unpacked) == json.loads(plain)
        # Small bodies stay uncompressed; a refused coding (q=0) is never chosen.
        async with raw.get(f"{tb.url}/customers/1", headers={"Accept-Encoding": coding}) as r:
            assert "Content-Encoding" not in r.headers
        refuse = {"Accept-Encoding": f"{coding};q=0"}
        async with raw.get(f"{tb.url}/customers?limit=50", headers=refuse) as r:
            assert r.headers.get("Content-Encoding") != coding


async def test_admin_routes_are_never_faulted(session: aiohttp.ClientSession) -> None:
    faults = Faults(error_rates={503: 1.0})
    async with Testbed(TestbedConfig(records=3, faults=faults)) as tb:
        async with session.get(f"{tb.url}/customers/1") as r:
            assert r.status == 503
        async with session.get(f"{tb.url}/_testbed/counters") as r:
            assert r.status == 200
            counters = await r.json()
        assert counters["requests"] == 1 and counters["errors_injected"] == 1
        async with session.post(f"{tb.url}/_testbed/reset") as r:
            assert r.status == 200
        assert tb.counters.requests == 0
        touch = {"kind": "customers", "ids": [1], "updated_at": "2030-01-01T00:00:00Z"}
        async with session.post(f"{tb.url}/_testbed/touch", json=touch) as r:
            assert (await r.json())["data"][0]["updated_at"] == "2030-01-01T00:00:00Z"
        async with session.post(f"{tb.url}/_testbed/config", json={"faults": None}) as r:
            assert r.status == 200
        async with session.get(f"{tb.url}/customers/1") as r:
            assert r.status == 200
            assert (await r.json())["version"] == 2
        async with session.post(f"{tb.url}/_testbed/config", json={"records": 5}) as r:
            assert r.status == 400  # data-shaping fields are not live
        assert "Testbed" in repr(tb) and tb.url in repr(tb)


async def test_compressed_representation_has_its_own_etag(session: aiohttp.ClientSession) -> None:
    async with Testbed(TestbedConfig(records=3, compress_min_bytes=10)) as tb:
        gzip_only = {"Accept-Encoding": "gzip"}
        async with session.get(f"{tb.url}/customers/1", headers=gzip_only) as r:
            assert r.headers["Content-Encoding"] == "gzip"
            etag = r.headers["ETag"]
        assert etag == '"customers-1-1-gzip"'  # strong tags differ per coding (RFC 9110 8.8.3)
        revalidate = {**gzip_only, "If-None-Match": etag}
        async with session.get(f"{tb.url}/customers/1", headers=revalidate) as r:
            assert r.status == 304
            assert r.headers["ETag"] == etag
        async with session.head(f"{tb.url}/customers/1") as r:
            assert r.status == 200
            assert await r.read() == b""
