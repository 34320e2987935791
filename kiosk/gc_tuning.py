"""Keep Python's garbage collector off the door's check-in path.

A door process starts with ~90,000 long-lived Python objects (the models' wrappers, SQLAlchemy,
pydantic, the gallery). Python's cyclic collector walks all of them in every full (generation 2)
collection: 62 ms measured here in `kiosk bench`, at a random moment, so now and then inside a
check-in between the face and the greeting. Freezing them once start-up is done moves them to a
permanent generation that collections skip; objects made afterwards are collected as usual, and
reference counting still frees everything that is not in a cycle.
"""

from __future__ import annotations

import gc
import logging

logger = logging.getLogger(__name__)


def freeze_startup_objects() -> int:
    """Collect once, then freeze every object alive now (gc.freeze); returns how many are frozen."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    logger.debug("%d start-up objects frozen out of garbage collection", frozen)
    return frozen
