"""The sync jobs the CLI tests name with ``--app`` (copied into each test's working directory),
configured from the environment, and a few attributes that are not jobs."""

import os

import interlock


def jobs() -> list[interlock.Sync]:
    client = interlock.Client(os.environ["SYNC_TEST_URL"])
    broken = os.environ.get("SYNC_TEST_BROKEN")

    async def write(record: interlock.SyncRecord) -> str | None:
        if broken and record.key == broken:
            raise ValueError("destination refused " + record.key)
        response = await client.put(f"/mirror/{record.id}", json=record.data, idempotency_key=record.idempotency_key)
        response.raise_for_status()
        return response.tracking_id

    source = interlock.SyncSource(client, "/customers", page_size=20)
    store = os.environ["SYNC_TEST_STORE"]
    return [interlock.Sync("customers", source=source, destination=write, store=store, attempts=1)]


def needs_args(settings: object) -> list[interlock.Sync]:
    return []


def returns_number() -> int:
    return 42


def explodes() -> list[interlock.Sync]:
    raise RuntimeError("no settings file")
