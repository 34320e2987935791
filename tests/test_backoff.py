"""kiosk.backoff: the one capped exponential back-off rule (camera, outbox, door sync, logins)."""

from __future__ import annotations

from kiosk.backoff import BackoffDelays, backoff_s


def test_backoff_s_doubles_from_initial_up_to_the_cap() -> None:
    assert [backoff_s(0.5, 10.0, n) for n in range(8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    assert backoff_s(2.0, 300.0, 0) == 2.0 and backoff_s(2.0, 300.0, -3) == 2.0


def test_backoff_s_is_the_power_formula_and_never_overflows() -> None:
    for initial, cap in ((1.0, 300.0), (2.0, 86400.0), (0.25, 30.0)):
        for n in range(40):
            assert backoff_s(initial, cap, n) == min(cap, initial * 2.0 ** n)
    assert backoff_s(2.0, 300.0, 10**6) == 300.0  # 2.0 ** 10**6 would raise OverflowError
    assert backoff_s(1.0, 5.0, 10, factor=1.0) == 1.0
    assert backoff_s(1.0, 100.0, 3, factor=3.0) == 27.0


def test_backoff_delays_grow_cap_and_reset() -> None:
    delays = BackoffDelays(1.0, 30.0)
    assert [delays.next_s() for _ in range(7)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    delays.reset()
    assert delays.next_s() == 1.0
    grown = BackoffDelays(0.5, 4.0, factor=3.0)
    assert [grown.next_s() for _ in range(4)] == [0.5, 1.5, 4.0, 4.0]
