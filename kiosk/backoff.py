"""Capped exponential back-off, the one rule behind every retry wait (camera reopens, the outbox's
database writes, door sync rounds, login throttling): initial_s, then factor times longer, at most
max_s; all in seconds."""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def backoff_s(initial_s: float, max_s: float, steps: int, factor: float = 2.0) -> float:
    """initial_s grown `steps` times by factor (0 steps: initial_s), at most max_s; seconds.

    Grown step by step and only until the cap, so no number of steps overflows."""
    delay = initial_s
    for _ in range(max(steps, 0)):
        if delay >= max_s or factor <= 1:
            break
        delay *= factor
    return min(delay, max_s)


class BackoffDelays:
    """The waits of one retry loop: next_s() is initial_s, then factor times longer at each further
    call, at most max_s; reset() after a success starts again at initial_s."""

    def __init__(self, initial_s: float, max_s: float, factor: float = 2.0) -> None:
        self.initial_s = initial_s
        self.max_s = max_s
        self.factor = factor
        self._steps = 0

    def next_s(self) -> float:
        """The wait before the next attempt (seconds); the one after it is longer, up to max_s."""
        delay = backoff_s(self.initial_s, self.max_s, self._steps, self.factor)
        self._steps += 1
        return delay

    def reset(self) -> None:
        """Start again at initial_s (the thing retried works again)."""
        self._steps = 0
