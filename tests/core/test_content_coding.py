from __future__ import annotations

import pytest

from interlock.core.content_coding import choose_coding

ALL = ("zstd", "br", "gzip")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("gzip", "gzip"),
        ("gzip, br", "br"),
        ("gzip, br, zstd", "zstd"),
        ("gzip;q=1, br;q=0.5", "gzip"),
        ("br;q=0.2, gzip;q=0.8, zstd;q=0.1", "gzip"),
        ("gzip;q=0", None),
        ("*", "zstd"),
        ("*;q=0.5, br;q=0, zstd;q=0", "gzip"),
        ("x-gzip", "gzip"),
        ("GZIP; Q=0.5", "gzip"),
        ("gzip;q=abc, br", "br"),
        ("gzip;q=2", None),
        ("identity", None),
        ("deflate", None),
    ],
)
def test_choose_coding(header: str | None, expected: str | None) -> None:
    assert choose_coding(header, ALL) == expected


def test_only_available_codings_are_chosen() -> None:
    assert choose_coding("zstd, br;q=0.9, gzip;q=0.1", ("gzip",)) == "gzip"
