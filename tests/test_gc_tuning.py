"""kiosk.gc_tuning: start-up objects frozen out of the garbage collector, later cycles still collected."""

from __future__ import annotations

import gc
import weakref

from kiosk.gc_tuning import freeze_startup_objects


class _Node:
    """A small object that can form a reference cycle."""

    def __init__(self) -> None:
        self.other: _Node | None = None


def test_freeze_moves_start_up_objects_out_of_collections_and_later_cycles_are_still_freed() -> None:
    gc.unfreeze()
    alive = len(gc.get_objects())
    try:
        frozen = freeze_startup_objects()
        assert gc.get_freeze_count() == frozen >= alive // 2
        # A cycle made after the freeze (a door's per-frame garbage) is still collected.
        a, b = _Node(), _Node()
        a.other, b.other = b, a
        ref = weakref.ref(a)
        del a, b
        gc.collect()
        assert ref() is None
    finally:
        gc.unfreeze()
    assert gc.get_freeze_count() == 0
