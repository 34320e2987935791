"""In/out on the central's merged stream (store.ingest_events with a store.Pairing), on both engines: each
event on the local day of its own door's site zone, and in toggle mode a sighting at another door within
the cooldown that neither opens nor closes a stay, also when it is uploaded a week late."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from kiosk import store
from kiosk.config import Settings
from kiosk.web.door_api import pairing_of

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")  # 9 h behind Berlin
UTC_ZONE = ZoneInfo("UTC")


class Doors:
    """Doors on the central's database; push() sends one event as that door would."""

    def __init__(self, db: store.Database, pairing: store.Pairing) -> None:
        self.db, self.pairing = db, pairing
        self.ids: dict[str, int] = {}
        self.seq: dict[str, int] = {}

    def add(self, name: str, site: str | None = None) -> str:
        door = store.add_door(self.db, name, site=site).door
        self.ids[door.device_id], self.seq[door.device_id] = door.id, 0
        return door.device_id

    def push(self, device: str, pid: int, at: datetime, kind: str = "in", *,
             now: datetime | None = None) -> None:
        self.seq[device] += 1
        seq = self.seq[device]
        event = store.DoorEvent(seq=seq, uuid=f"{device}-{seq}", person_id=pid, at=at, kind=kind)
        store.ingest_events(self.db, self.ids[device], [event], pairing=self.pairing, now=now or at)


def kinds(db: store.Database, pid: int, tz: ZoneInfo = BERLIN) -> list[tuple[str, str, str | None]]:
    """(local time "DD HH:MM:SS" in tz, kind, device) of a person's events in time order."""
    events = sorted(store.events_after(db, 0, 10_000), key=lambda e: (e.occurred_at, e.id))
    return [(e.occurred_at.astimezone(tz).strftime("%d %H:%M:%S"), e.kind, e.device_id) for e in events
            if e.person_id == pid]


def local(day: int, hour: int, minute: int = 0, second: int = 0, tz: ZoneInfo = BERLIN) -> datetime:
    """An aware time in March 2026 in tz."""
    return datetime(2026, 3, day, hour, minute, second, tzinfo=tz)


# -- each event on its own door's local day ------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["first_last", "toggle"])
def test_an_event_late_in_the_evening_stays_on_its_own_sites_day(db: store.Database, mode: str) -> None:
    """Two sites 9 h apart: 23:30 in Los Angeles is already the next date in UTC and in Berlin (the
    central's site: zone), yet it is the Los Angeles day's check-out, not the next day's check-in."""
    pairing = store.Pairing(mode, BERLIN, {"la": LOS_ANGELES, "berlin": BERLIN})
    doors = Doors(db, pairing)
    la, berlin = doors.add("LA lobby", "la"), doors.add("Berlin gate", "berlin")
    ada = store.add_person(db, "E1", "Ada").id
    bob = store.add_person(db, "E2", "Bob").id
    late = local(2, 23, 30, tz=LOS_ANGELES)
    assert late.astimezone(UTC).date().day == 3 and late.astimezone(BERLIN).date().day == 3
    doors.push(la, ada, local(2, 9, tz=LOS_ANGELES))
    doors.push(la, ada, late, "in")  # the door's own answer was "in"? the central decides again
    assert [(k, d) for _, k, d in kinds(db, ada, LOS_ANGELES)] == [("in", la), ("out", la)]
    # Berlin's morning of the 3rd (before 23:30 LA in UTC) is Bob's first event of his day there
    doors.push(berlin, bob, local(3, 8, 15))
    doors.push(berlin, bob, local(3, 8, 40), "in")
    assert [k for _, k, _ in kinds(db, bob)] == ["in", "out"]
    # Ada's next LA morning starts a new day
    doors.push(la, ada, local(3, 8, 55, tz=LOS_ANGELES), "out")
    assert [k for _, k, _ in kinds(db, ada)] == ["in", "out", "in"]


@pytest.mark.parametrize("mode", ["first_last", "toggle"])
def test_in_at_new_york_late_then_seen_in_berlin_next_morning_are_two_days(db: store.Database, mode: str) -> None:
    """22:00 in New York and 09:00 the next morning in Berlin fall on one UTC date (the central's zone
    here): each is the first check-in of its own site's day; New York's evening closes on New York's day,
    also when that door uploads it late."""
    doors = Doors(db, store.Pairing(mode, UTC_ZONE, {"new-york": NEW_YORK, "berlin": BERLIN}))
    ny, berlin = doors.add("NY lobby", "new-york"), doors.add("Berlin gate", "berlin")
    ada = store.add_person(db, "E1", "Ada").id
    evening, morning = local(2, 22, tz=NEW_YORK), local(3, 9)
    assert evening.astimezone(UTC).date() == morning.astimezone(UTC).date()
    doors.push(ny, ada, evening)
    doors.push(berlin, ada, morning, "out")  # provisional "out" from a door that saw her yesterday's event?
    assert [(k, d) for _, k, d in kinds(db, ada)] == [("in", ny), ("in", berlin)]
    doors.push(berlin, ada, local(3, 17), "in")
    # the New York door uploads her 23:50 (New York's day 2, UTC's day 3) a week later
    doors.push(ny, ada, local(2, 23, 50, tz=NEW_YORK), "in", now=local(10, 12))
    assert [(k, d) for _, k, d in kinds(db, ada)] == [("in", ny), ("out", ny), ("in", berlin), ("out", berlin)]


@pytest.mark.parametrize("mode", ["first_last", "toggle"])
def test_events_without_a_doors_site_are_placed_in_the_home_sites_zone(db: store.Database, mode: str) -> None:
    """A hand correction and an event at a door with no site take the zone of the person's home site (the
    site of their latest camera event at a door with a site), as reports place them: a forgotten check-out
    entered for 18:30 in New York (00:30 the next day in Berlin, the central's site: zone) closes New York's
    day and leaves the next New York morning its check-in. A site not in `sites:` has site:'s zone, and so
    has everything of a person never seen at a door with a site."""
    doors = Doors(db, store.Pairing(mode, BERLIN, {"ny": NEW_YORK}))
    ny, side, paris = doors.add("NY lobby", "ny"), doors.add("Side door"), doors.add("Paris gate", "paris")
    ada = store.add_person(db, "E1", "Ada").id
    doors.push(ny, ada, local(2, 9, tz=NEW_YORK))
    store.add_correction(db, ada, local(2, 18, 30, tz=NEW_YORK), "out", actor="admin", note="forgot",
                         now=local(3, 7, tz=NEW_YORK))
    doors.push(ny, ada, local(3, 8, tz=NEW_YORK), "out")
    doors.push(side, ada, local(3, 23, 30, tz=NEW_YORK))  # Berlin's 4th, New York's 3rd
    expected = ["in", "out", "in", "out"]
    assert [(k, d) for _, k, d in kinds(db, ada)] == list(zip(expected, [ny, "manual", ny, side], strict=True))
    # Bob: a site without a zone of its own, and a door without a site: Berlin's days
    bob = store.add_person(db, "E2", "Bob").id
    doors.push(paris, bob, local(2, 23, 0))
    doors.push(paris, bob, local(3, 0, 30), "out")
    doors.push(side, bob, local(3, 0, 50), "out")
    assert [k for _, k, _ in kinds(db, bob)] == ["in", "in", "out"]
    # Cy, only ever at the door without a site: site:'s zone
    cy = store.add_person(db, "E3", "Cy").id
    doors.push(side, cy, local(2, 23, 50))
    doors.push(side, cy, local(3, 0, 10), "out")
    assert [k for _, k, _ in kinds(db, cy)] == ["in", "in"]


def test_pairing_from_settings_has_each_sites_zone() -> None:
    """door_api.pairing_of: mode and cooldown from attendance, a zone for each site of `sites:` (a site
    that leaves its zone out takes site:'s), site:'s zone as the default."""
    settings = Settings.model_validate({
        "role": "central", "site": {"timezone": "Europe/Berlin"},
        "attendance": {"mode": "toggle", "cooldown_s": 45},
        "sites": {"ny": {"timezone": "America/New_York"}, "paris": {"work_days": ["mon"]}}})
    pairing = pairing_of(settings)
    assert pairing == store.Pairing("toggle", BERLIN, {"ny": NEW_YORK, "paris": BERLIN}, 45.0)


# -- the cooldown across doors (toggle mode) -----------------------------------------------------------------

def test_a_sighting_at_another_door_within_the_cooldown_neither_opens_nor_closes(db: store.Database) -> None:
    """Door B (an inner door a few steps on) sees her 20 s after door A's check-in; its event, uploaded a
    week later, falls between door A's events and takes the previous event's kind instead of toggling
    everything after it. In first_last mode nothing changes: every later event is an "out"."""
    results = {}
    for mode in ("toggle", "first_last"):
        ada = store.add_person(db, f"E-{mode}", "Ada").id
        doors = Doors(db, store.Pairing(mode, BERLIN, {}, cooldown_s=60))
        a, b = doors.add(f"Gate {mode}"), doors.add(f"Inner {mode}")
        for hour, kind in ((8, "in"), (12, "out"), (13, "in"), (17, "out")):
            doors.push(a, ada, local(2, hour), kind)
        doors.push(b, ada, local(2, 8, 0, 20), "in", now=local(9, 10))  # a week late
        results[mode] = [(t, k) for t, k, _ in kinds(db, ada)]
    assert results["toggle"] == [("02 08:00:00", "in"), ("02 08:00:20", "in"), ("02 12:00:00", "out"),
                                 ("02 13:00:00", "in"), ("02 17:00:00", "out")]
    assert [k for _, k in results["first_last"]] == ["in", "out", "out", "out", "out"]


def test_the_cooldown_counts_from_the_previous_counted_event(db: store.Database) -> None:
    """Sightings within the cooldown do not stretch it: 70 s after the counted check-in is a check-out even
    with a repeat 20 s before it; a repeat after an "out" stays "out"; a hand correction keeps its kind, and a
    sighting within the cooldown after it takes its kind (nothing opens); the next day starts with "in"."""
    doors = Doors(db, store.Pairing("toggle", BERLIN, {}, cooldown_s=60))
    a, b = doors.add("Gate"), doors.add("Inner")
    ada = store.add_person(db, "E1", "Ada").id
    doors.push(a, ada, local(2, 8, 0, 0))
    doors.push(b, ada, local(2, 8, 0, 50))   # repeat: in
    doors.push(a, ada, local(2, 8, 1, 10))   # 70 s after 08:00:00: out
    doors.push(b, ada, local(2, 8, 1, 40))   # 30 s after the out: out
    doors.push(b, ada, local(2, 8, 2, 10))   # 60 s after the out (not within): in
    store.add_correction(db, ada, local(2, 8, 2, 30), "out", actor="admin", note="left", now=local(2, 9))
    doors.push(a, ada, local(2, 8, 2, 50))   # 40 s after 08:02:10: takes the correction's "out"
    doors.push(a, ada, local(3, 0, 0, 10))   # a new day, 10 s after the previous day's end
    doors.push(b, ada, local(3, 0, 0, 20))   # and its repeat
    assert [(t, k) for t, k, _ in kinds(db, ada)] == [
        ("02 08:00:00", "in"), ("02 08:00:50", "in"), ("02 08:01:10", "out"), ("02 08:01:40", "out"),
        ("02 08:02:10", "in"), ("02 08:02:30", "out"), ("02 08:02:50", "out"),
        ("03 00:00:10", "in"), ("03 00:00:20", "in")]


def test_a_zero_cooldown_toggles_every_sighting(db: store.Database) -> None:
    """cooldown_s 0 (the default of a Pairing): as before, every camera event toggles."""
    doors = Doors(db, store.Pairing("toggle", BERLIN))
    a, b = doors.add("Gate"), doors.add("Inner")
    ada = store.add_person(db, "E1", "Ada").id
    doors.push(a, ada, local(2, 8, 0, 0))
    doors.push(b, ada, local(2, 8, 0, 0))  # the same second at two doors
    doors.push(b, ada, local(2, 8, 0, 5))
    assert [k for _, k, _ in kinds(db, ada)] == ["in", "out", "in"]
