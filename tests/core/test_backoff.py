import random

import pytest

from interlock import Backoff
from interlock.errors import ConfigError


def test_exponential_ceiling_doubles_until_cap() -> None:
    backoff = Backoff(base=0.1, multiplier=2, cap=1.0, jitter="none")
    assert [backoff.delay(n) for n in range(1, 7)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


def test_full_jitter_stays_within_ceiling_and_varies() -> None:
    backoff = Backoff(base=1.0, multiplier=2, cap=8.0)
    rng = random.Random(7)
    draws = [backoff.delay(3, rng) for _ in range(200)]
    assert all(0 <= d <= 4.0 for d in draws)
    assert len({round(d, 6) for d in draws}) > 150


def test_equal_jitter_keeps_half_the_ceiling() -> None:
    backoff = Backoff(base=2.0, jitter="equal", cap=10)
    rng = random.Random(1)
    assert all(1.0 <= backoff.delay(1, rng) <= 2.0 for _ in range(100))


def test_explicit_delays_repeat_the_last() -> None:
    backoff = Backoff(delays=[1, 5, 30], jitter="none", cap=30)
    assert [backoff.delay(n) for n in range(1, 6)] == [1, 5, 30, 30, 30]


def test_huge_retry_numbers_do_not_overflow() -> None:
    assert Backoff(jitter="none", cap=10).delay(10_000) == 10


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"base": -1}, "base"),
        ({"multiplier": 0.5}, "multiplier"),
        ({"jitter": "some"}, "jitter"),
        ({"delays": [1, -2]}, "delays"),
    ],
)
def test_bad_values_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=f"Backoff.{field}"):
        Backoff(**kwargs)  # type: ignore[arg-type]


class _Draw:
    """A random source that always draws ``value``."""

    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


def test_jitter_arithmetic_exactly() -> None:
    # Ceilings 1 and 4: full jitter draws a fraction of it, equal jitter keeps half and draws the rest.
    assert Backoff(base=1.0, jitter="full").delay(1, _Draw(0.5)) == 0.5  # type: ignore[arg-type]
    assert Backoff(base=4.0, cap=10.0, jitter="equal").delay(1, _Draw(0.5)) == 3.0  # type: ignore[arg-type]
    assert Backoff(base=4.0, cap=10.0, jitter="none").delay(1, _Draw(0.5)) == 4.0  # type: ignore[arg-type]
    assert Backoff(base=0.0, jitter="full").delay(3, _Draw(0.5)) == 0.0  # type: ignore[arg-type]


def test_retry_zero_has_no_delay() -> None:
    assert Backoff(base=1.0, jitter="none").ceiling(0) == 0.0
    assert Backoff(delays=[2.0], jitter="none").ceiling(0) == 0.0
