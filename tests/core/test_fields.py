from __future__ import annotations

import pytest

from interlock.core.fields import FieldError, parse_fields, select_fields

USER = {"id": 1, "email": "a@example.com", "name": "A", "stats": {"total_bookings": 3, "rating": 4.5}}


def test_parse_nested_and_merges() -> None:
    assert parse_fields("id,email,stats.total_bookings,stats.rating") == {
        "id": None,
        "email": None,
        "stats": {"total_bookings": None, "rating": None},
    }
    assert parse_fields("stats.rating,stats") == {"stats": None}
    assert parse_fields("stats,stats.rating") == {"stats": None}


@pytest.mark.parametrize(
    "spec", ["", "id,", ",id", "a..b", "a b", "id;drop", "x" * 65, ",".join(["a"] * 101), ".".join(["a"] * 9)]
)
def test_malformed(spec: str) -> None:
    with pytest.raises(FieldError):
        parse_fields(spec)


def test_select_object_and_nested() -> None:
    assert select_fields(USER, parse_fields("id,stats.total_bookings")) == {
        "id": 1,
        "stats": {"total_bookings": 3},
    }


def test_select_list_of_objects_tolerates_a_field_some_lack() -> None:
    rows = [USER, {"id": 2, "stats": None}, {"id": 3}]
    assert select_fields(rows, parse_fields("id,stats.rating")) == [
        {"id": 1, "stats": {"rating": 4.5}},
        {"id": 2, "stats": None},
        {"id": 3},
    ]
    assert select_fields({"items": rows[:1]}, parse_fields("items.email")) == {
        "items": [{"email": "a@example.com"}]
    }


@pytest.mark.parametrize(("spec", "field"), [("nope", "nope"), ("stats.nope", "stats.nope"), ("id.x", None)])
def test_unknown_fields_name_the_path(spec: str, field: str | None) -> None:
    with pytest.raises(FieldError) as info:
        select_fields(USER, parse_fields(spec))
    assert info.value.field == field
    with pytest.raises(FieldError):
        select_fields([USER, USER], parse_fields(spec))
