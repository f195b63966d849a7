"""Checks for config values, one per kind of bound: each raises ``ConfigError(owner, field,
problem)`` naming what was given and what is accepted, so every config object words the same
mistake the same way. Ground floor: imports only ``errors``."""

from __future__ import annotations

from .errors import ConfigError

__all__ = ["check_count", "check_seconds"]


def check_count(owner: str, field: str, value: object, *, minimum: int = 1, optional: bool = False) -> None:
    """``value`` must be an integer >= ``minimum`` (or None when ``optional``)."""
    if optional and value is None:
        return
    if not isinstance(value, int) or value < minimum:
        accepted = f"an integer >= {minimum}" + (" or None" if optional else "")
        raise ConfigError(owner, field, f"must be {accepted}, got {value!r}")


def check_seconds(
    owner: str, field: str, value: object, *, positive: bool = False, optional: bool = False
) -> None:
    """``value`` must be a number of seconds >= 0 (> 0 when ``positive``; or None when
    ``optional``). NaN is refused: it compares false with every bound."""
    if optional and value is None:
        return
    if not isinstance(value, int | float) or not (value > 0 if positive else value >= 0):
        accepted = ("> 0" if positive else ">= 0") + " seconds" + (" or None" if optional else "")
        raise ConfigError(owner, field, f"must be {accepted}, got {value!r}")
