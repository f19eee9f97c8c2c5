"""Waiting for a condition, bounded in time: never a bare sleep in a test."""
from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """The condition did not hold in time (a test failure)."""


def wait_until(condition: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll condition() until it returns something truthy and return that.
    Exceptions raised by condition count as "not yet" (the last one is shown
    on timeout). Raises WaitTimeout after timeout seconds."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = condition()
            if value:
                return value
            last = value
        except Exception as e:  # noqa: BLE001 - a condition that cannot be read yet is not met
            last = e
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout}s waiting for: {what} (last: {last!r})")
        time.sleep(interval)
