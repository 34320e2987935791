"""Running one piece of work in several threads at once, for the tests of concurrent writers."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def run_in_threads(work: Callable[[], T], count: int, timeout_s: float) -> tuple[list[T], list[BaseException]]:
    """work() in `count` threads started together, each joined for up to timeout_s: (what they
    returned, what they raised), each list in the order the threads finished."""
    results: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(work())
        except BaseException as exc:  # noqa: BLE001 - handed to the caller to look at
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout_s)
    return results, errors
