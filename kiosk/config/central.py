"""Settings of a door that belongs to a central server (role: door), and what the central checks."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from kiosk.config.base import Section


class CentralSettings(Section):
    """Where a door's central server is and how often they talk (docs/central.md)."""

    # The central's web address, e.g. https://kiosk.example.org; required with role: door.
    url: str = ""
    # The door's token, written by `kiosk central enrol URL CODE` (mode 0600); empty: door.token
    # beside the database.
    token_file: Path | None = None
    # Seconds between two rounds of pushing events and pulling gallery changes while online.
    # Shorter: a person enrolled or removed on the central reaches the door sooner, more requests.
    sync_s: float = Field(10.0, gt=0, le=3600)
    # Events per push; larger batches upload a backlog faster but each request is bigger.
    batch: int = Field(500, ge=1, le=5000)
    # Seconds one request may take before the door counts the central as offline.
    timeout_s: float = Field(10.0, gt=0, le=300)
    # On the central: events from a door whose clock is off by more than this (s) are flagged for review.
    max_clock_offset_s: float = Field(120.0, gt=0)
    # On the central's Doors page: an enrolled door not heard from for longer than this (s) is shown
    # as silent (an alert). Shorter notices a dead door sooner; below a few sync_s it cries wolf.
    silent_after_s: float = Field(900.0, gt=0, le=30 * 86400)
    # On a door: seconds without a good sync round before the door screen tells the people checking in
    # that their check-ins wait on the kiosk. Shorter tells them sooner; below a few sync_s every short
    # outage (a router restart) shows it, longer leaves a dead link unnoticed at the door for longer.
    offline_notice_after_s: float = Field(1800.0, gt=0, le=7 * 86400)
