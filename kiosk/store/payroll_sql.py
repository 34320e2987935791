"""The range payroll CSV made in PostgreSQL (first_last mode; kiosk.reports.payroll_fast says when):
one COPY statement for the whole range, the events grouped per (person, local day), each day's CSV
text built in SQL and streamed day by day (COPY ... TO STDOUT, binary: no quoting to undo).

The caller hands over everything that is not in the tables, already decided in Python: the cells
people type (formula-escaped and quoted by kiosk.csv_safe), each person's rank in (name.casefold(),
employee id) order, the doors, the site rules (zones as UTC-offset spans, workday start, grace, work
days, holidays, today) and the site filter. The SQL then follows the site rules (docs/central.md):
an event's local day is its own zone's (its door's site's; no door, or a door without a site: the
person's home site's); a person-day's times and lateness are in the zone of its site (the first
event at a door; no such door, or one without a site: the home site's), its hours real elapsed
minutes (across a DST change too) and its lateness wall-clock minutes; leave rows and "a day
already over" use the home site's work days and today, and a person who came that day (at any
site, whatever the filter shows) has no leave row.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from kiosk.errors import StoreError
from kiosk.store.db import Database
from kiosk.vocabulary import EventKind

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OffsetSpan:
    """A stretch of time with one UTC offset in a zone: until (aware, exclusive; None: open-ended),
    the offset (s) and its ISO 8601 text ("+02:00") as datetime.isoformat writes it."""

    until: datetime | None
    offset_s: int
    text: str


@dataclass(frozen=True)
class PayrollRules:
    """One site's rules as the query reads them: zone (index into PayrollRequest.zones), workday
    start and lateness threshold (microseconds after local midnight: start + grace), work days (ISO
    weekdays, 1 = Monday), holidays and the zone's today (days before it are over)."""

    zone: int
    start_us: int
    late_after_us: int
    work_days: frozenset[int]
    holidays: frozenset[date]
    today: date


@dataclass(frozen=True)
class PayrollDoor:
    """A door: device id, site (None: none given), rules (index; None: no site, so its events and the
    days it is first at take the person's home site's rules), its name and site as ready CSV cells."""

    device_id: str
    site: str | None
    rules: int | None
    name_cell: str
    site_cell: str


@dataclass(frozen=True)
class PayrollPerson:
    """A person as the CSV shows them: id, rank (place in name.casefold(), employee id order),
    "employee_id,name" as ready CSV cells, home site cell, home rules (index) and whether their
    leave rows are listed (home site in the filter)."""

    id: int
    rank: int
    cells: str
    home_cell: str
    home_rules: int
    listed: bool


@dataclass(frozen=True)
class PayrollRequest:
    """What payroll_days reads: local dates start..end, the UTC window covering them in every zone
    (aware), zones (offset spans, in time order), rules (index 0: site:'s, for a door without a site),
    doors, people, site columns or not, the site filter (None: all) and one person (None: all)."""

    start: date
    end: date
    utc_from: datetime
    utc_to: datetime
    zones: Sequence[Sequence[OffsetSpan]]
    rules: Sequence[PayrollRules]
    doors: Sequence[PayrollDoor]
    people: Sequence[PayrollPerson]
    by_site: bool
    only: frozenset[str] | None = None
    person_id: int | None = None


def _naive(at: datetime) -> str:
    """An aware instant as the SQL literal of the naive-UTC column type."""
    return f"TIMESTAMP '{at.astimezone(UTC).replace(tzinfo=None).isoformat()}'"


def _pick(key: str, values: Sequence[str]) -> str:
    """SQL choosing values[key] (a small int expression); the value itself when there is one."""
    if len(set(values)) == 1:
        return values[0]
    return "CASE " + key + "".join(f" WHEN {i} THEN {v}" for i, v in enumerate(values)) + " END"


def _by_span(spans: Sequence[OffsetSpan], at: str, value: Any) -> str:
    """SQL of value(span) for the span holding the naive-UTC time expression `at`."""
    if len(spans) == 1:
        return str(value(spans[0]))
    parts = [f" WHEN {at} < {_naive(s.until)} THEN {value(s)}" for s in spans[:-1] if s.until is not None]
    return "CASE" + "".join(parts) + f" ELSE {value(spans[-1])} END"


def _offset(zones: Sequence[Sequence[OffsetSpan]], zone: str, at: str) -> str:
    """SQL of the UTC offset (interval) of zone (index expression) at the naive-UTC time `at`."""
    return _pick(zone, [_by_span(z, at, lambda s: f"INTERVAL '{s.offset_s} seconds'") for z in zones])


def _offset_text(zones: Sequence[Sequence[OffsetSpan]], zone: str, at: str) -> str:
    """SQL of the ISO 8601 offset text ("+02:00") of zone at the naive-UTC time `at`."""
    return _pick(zone, [_by_span(z, at, lambda s: f"'{s.text}'") for z in zones])


def _iso(zones: Sequence[Sequence[OffsetSpan]], zone: str, local: str, at: str) -> str:
    """SQL of kiosk.dates.iso() of the naive-UTC time `at` whose local time in zone is `local`: the
    local time to the second, "T", the offset; "" when at is NULL (needs DateStyle ISO)."""
    return (f"COALESCE(replace(CAST(date_trunc('second', {local}) AS text), ' ', 'T') || "
            f"{_offset_text(zones, zone, at)}, '')")


def _work_day(rules: Sequence[PayrollRules], key: str, day: str) -> str:
    """SQL: is the date expression `day` a work day under rules[key] (work days, not a holiday)?"""
    tests = []
    for r in rules:
        test = f"extract(isodow FROM {day}) IN ({', '.join(map(str, sorted(r.work_days))) or 'NULL'})"
        if r.holidays:
            test += f" AND {day} NOT IN ({', '.join(f'DATE {d.isoformat()!r}' for d in sorted(r.holidays))})"
        tests.append(f"({test})")
    return _pick(key, tests)


def _hours(m: str) -> str:
    """SQL of round(m / 60, 2) as "%.2f" text from the whole minutes m (never a tie to round: 100 m / 60
    ends in .0, .33 or .67); the statement's percent signs are doubled for psycopg."""
    def text(cents: str) -> str:
        return f"CAST({cents} / 100 AS text) || '.' || lpad(CAST({cents} %% 100 AS text), 2, '0')"
    return f"CASE WHEN {m} >= 0 THEN {text(f'(10 * {m} + 3) / 6')} ELSE '-' || {text(f'(3 - 10 * {m}) / 6')} END"


class _Statement:
    """The parameters of a statement being built: bind(value) gives its %(pN)s placeholder."""

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}

    def bind(self, value: Any) -> str:
        """The placeholder of value (merged into the statement by psycopg as a quoted literal)."""
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f"%({name})s"

    def ints(self, values: Sequence[int | None]) -> str:
        """A constant int[] (1-based, None: NULL; a subscript of it is one step, whatever its length)."""
        return f"(CAST({self.bind(list(values))} AS int[]))"

    def texts(self, values: Sequence[str | None]) -> str:
        """A constant jsonb array of texts (0-based; `->> i` finds an element in a step or two,
        where a text[] subscript walks the elements before it)."""
        return f"(CAST({self.bind(json.dumps(list(values)))} AS jsonb))"


def _hours_lookup(st: _Statement, m: str) -> str:
    """_hours(m) read from a constant list for the minutes a day can hold (-120..2999), computed beyond."""
    low, high = -120, 2999
    table = [f"{round(x / 60.0, 2):.2f}" for x in range(low, high + 1)]
    return (f"CASE WHEN {m} BETWEEN {low} AND {high} THEN {st.texts(table)} ->> CAST({m} - {low} AS int) "
            f"ELSE {_hours(m)} END")


def payroll_statement(req: PayrollRequest) -> tuple[str, dict[str, Any]]:
    """The COPY statement and its psycopg %(name)s parameters: (day, that day's CSV rows as text)
    per local day with rows, in day order. People and doors are looked up in constant arrays (no
    join after the grouping, so its (day, person) order carries to the per-day aggregate)."""
    st = _Statement()
    zones, rules = req.zones, req.rules
    codes = {d.device_id: i + 1 for i, d in enumerate(req.doors)}  # 0: no door
    people = sorted(req.people, key=lambda p: p.rank)
    by_id = [-1] * max((p.id for p in people), default=0)
    home_by_id = [0] * len(by_id)
    for p in people:
        by_id[p.id - 1], home_by_id[p.id - 1] = p.rank, p.home_rules
    ranks, homes = st.ints(by_id), st.ints(home_by_id)

    def rank(key: str) -> str:
        return f"{ranks}[{key}]"

    def home_rules(key: str) -> str:
        return f"{homes}[{key}]"

    person_cells = st.texts([p.cells for p in people])
    home_cells = st.texts([p.home_cell for p in people])
    door_names = st.texts(["", *(d.name_cell for d in req.doors)])
    door_sites = st.texts([None, *(d.site for d in req.doors)])
    site_cells = st.texts(["", *(d.site_cell for d in req.doors)])
    door_rules = st.ints([None, *(d.rules for d in req.doors)])  # NULL: no door, or a door without a site

    # each event's zone: its door's site's; no door (a correction, a device no door has, a door
    # without a site): the person's home site's (looked up only then: COALESCE is lazy)
    multi_zone = len(zones) > 1
    event_zone = ("COALESCE(CASE WHEN e.recorded_by IS NULL THEN d.zone END, "
                  f"{_pick(home_rules('e.person_id'), [str(r.zone) for r in rules])})" if multi_zone else "0")
    door_zone = [None if d.rules is None else rules[d.rules].zone for d in req.doors]
    one_person = f"AND e.person_id = {st.bind(req.person_id)}" if req.person_id is not None else ""
    leave_person = f"AND l.person_id = {st.bind(req.person_id)}" if req.person_id is not None else ""
    listed = ("" if all(p.listed for p in people)
              else f"AND l.person_id = ANY(CAST({st.bind([p.id for p in people if p.listed])} AS int[]))")
    start, end = st.bind(req.start), st.bind(req.end)
    kind_in, kind_out = st.bind(str(EventKind.IN)), st.bind(str(EventKind.OUT))
    only = st.bind(sorted(req.only)) if req.only is not None else None
    shown = (f"AND COALESCE(({door_sites} ->> g.site_dev) = ANY(CAST({only} AS text[])), false)"
             if only is not None else "")
    zone_of_rules = _pick("f.rules", [str(r.zone) for r in rules])
    # one concat_ws of few pieces: each piece or || costs an allocation per row (~0.1 us)
    flags = ("CASE WHEN f.open THEN CASE WHEN f.fi IS NOT NULL AND f.day < f.today "
             "THEN CASE WHEN f.corrected THEN 'open,yes,,yes' ELSE 'open,no,,yes' END "
             "ELSE CASE WHEN f.corrected THEN 'open,yes,,no' ELSE 'open,no,,no' END END "
             "ELSE CASE WHEN f.corrected THEN 'present,yes,,no' ELSE 'present,no,,no' END END")
    pieces = ["CAST(f.day AS text)", "f.cells", _iso(zones, "f.zone", "f.fi", "f.first_in"),
              _iso(zones, "f.zone", "f.lo", "f.last_out"), _hours_lookup(st, "f.m"),
              "CASE WHEN f.late THEN 'yes,' || CAST(f.minutes_late AS text) ELSE 'no,0' END", flags]
    leave_rank = rank("lv.person_id")
    leave_line = (f"CAST(lv.day AS text) || ',' || ({person_cells} ->> {leave_rank}) || ',,,0.00,no,0,leave,no,' "
                  "|| lv.kind || ',no'")
    if req.by_site:
        pieces += [f"COALESCE({site_cells} ->> f.site_dev, '')", f"COALESCE({door_names} ->> f.in_dev, '')",
                   f"CASE WHEN f.lo IS NULL THEN '' ELSE COALESCE({door_names} ->> f.out_dev, '') END"]
        leave_line += f" || ',' || ({home_cells} ->> {leave_rank}) || ',,'"
    present_line = f"concat_ws(',', {', '.join(pieces)})"  # no piece is NULL
    # a leave row only where the person came nowhere that day (no event placed on it, at any site:
    # a site filter hides rows, not the coming); a subquery per leave day (an index probe), where NOT
    # EXISTS would be planned as an anti-join of the range's events
    same_day = (f"e.person_id = lv.person_id AND e.occurred_at >= CAST(lv.day AS timestamp) - INTERVAL '1 day' "
                f"AND e.occurred_at < CAST(lv.day AS timestamp) + INTERVAL '2 days' "
                f"AND CAST(e.occurred_at + {_offset(zones, event_zone, 'e.occurred_at')} AS date) = lv.day")
    no_row = (f"NOT COALESCE((SELECT true FROM attendance_events e LEFT JOIN doors d ON d.device_id = e.device_id "
              f"WHERE {same_day} LIMIT 1), false)")
    sql = f"""COPY (
WITH doors AS NOT MATERIALIZED (  -- a materialized CTE would keep the grouping out of parallel workers
    SELECT * FROM unnest(CAST({st.bind([d.device_id for d in req.doors])} AS text[]),
                         CAST({st.bind([codes[d.device_id] for d in req.doors])} AS int[]),
                         CAST({st.bind(door_zone)} AS int[])) AS d(device_id, code, zone)
), placed AS (
    SELECT e.person_id, e.kind, e.occurred_at, e.recorded_by IS NOT NULL AS manual,
           COALESCE(d.code, 0) AS dev,
           CAST(e.occurred_at + {_offset(zones, event_zone, "e.occurred_at")} AS date) AS day
    FROM attendance_events e
    LEFT JOIN doors d ON d.device_id = e.device_id
    WHERE e.occurred_at >= {st.bind(_naive_utc(req.utc_from))} AND e.occurred_at < {st.bind(_naive_utc(req.utc_to))}
      AND e.person_id IS NOT NULL {one_person}
), days AS (
    SELECT day, person_id,
           min(occurred_at) FILTER (WHERE kind = {kind_in}) AS first_in,
           max(occurred_at) FILTER (WHERE kind = {kind_out}) AS latest_out,
           count(*) FILTER (WHERE kind = {kind_out}) AS outs,
           bool_or(manual) AS corrected,
           CAST((min(ARRAY[date_part('epoch', occurred_at), dev]) FILTER (WHERE kind = {kind_in}))[2] AS int)
               AS in_dev,
           CAST((max(ARRAY[date_part('epoch', occurred_at), dev]) FILTER (WHERE kind = {kind_out}))[2] AS int)
               AS out_dev,
           CAST((min(ARRAY[date_part('epoch', occurred_at), dev]) FILTER (WHERE dev > 0 AND NOT manual))[2] AS int)
               AS site_dev
    FROM placed GROUP BY day, person_id
    OFFSET 0  -- the day filter stays outside: pushed into WHERE, its estimate (0.5 %%) spoils the plan
), figures AS (
    SELECT g.day, g.person_id, g.corrected, g.outs, g.first_in, g.in_dev, g.out_dev, g.site_dev,
           CASE WHEN g.first_in IS NULL OR g.latest_out > g.first_in THEN g.latest_out END AS last_out,
           COALESCE({door_rules}[g.site_dev + 1], {home_rules('g.person_id')}) AS rules,  -- no site: the home's
           {home_rules('g.person_id')} AS home_rules,
           {rank('g.person_id')} AS rank
    FROM days g
    WHERE g.day BETWEEN {start} AND {end} {shown}
    ORDER BY g.day OFFSET 0
), local AS (
    SELECT f.*, {zone_of_rules} AS zone, {person_cells} ->> f.rank AS cells,
           f.first_in + {_offset(zones, zone_of_rules, "f.first_in")} AS fi,
           f.last_out + {_offset(zones, zone_of_rules, "f.last_out")} AS lo,
           f.day + {_pick("f.rules", [_micros(r.start_us) for r in rules])} AS day_start,
           f.day + {_pick("f.rules", [_micros(r.late_after_us) for r in rules])} AS late_after,
           {_pick("f.home_rules", [f"DATE '{r.today.isoformat()}'" for r in rules])} AS today
    FROM figures f
    ORDER BY f.day OFFSET 0
), present AS (
    SELECT f.*,
           CASE WHEN f.last_out IS NOT NULL AND f.first_in IS NOT NULL  -- real minutes (UTC), also on DST days
                THEN CAST(floor(date_part('epoch', f.last_out - f.first_in) / 60) AS bigint) ELSE 0 END AS m,
           f.fi > f.late_after AS late,
           CAST(floor(date_part('epoch', f.fi - f.day_start) / 60) AS bigint) AS minutes_late,
           (f.fi IS NOT NULL AND f.lo IS NULL) OR (f.outs > 0 AND f.fi IS NULL) AS open
    FROM local f
    ORDER BY f.day OFFSET 0
), leave_days AS (
    SELECT DISTINCT ON (l.person_id, g.d) CAST(g.d AS date) AS day, l.person_id, l.kind
    FROM leave l
    CROSS JOIN LATERAL generate_series(GREATEST(l.first_day, {start}), LEAST(l.last_day, {end}),
                                       INTERVAL '1 day') AS g(d)
    WHERE l.last_day >= {start} AND l.first_day <= {end} {leave_person} {listed}
      AND {_work_day(rules, home_rules('l.person_id'), "CAST(g.d AS date)")}
    ORDER BY l.person_id, g.d, l.first_day DESC, l.id DESC
), lines AS (
    SELECT f.day, f.rank, {present_line} AS line FROM present f
    UNION ALL
    SELECT lv.day, {leave_rank}, {leave_line} FROM leave_days lv WHERE {no_row}
)
SELECT day, string_agg(line, E'\\n' ORDER BY rank) || E'\\n' FROM lines GROUP BY day ORDER BY day
) TO STDOUT (FORMAT binary)"""
    return sql, st.params


def _naive_utc(at: datetime) -> datetime:
    """An aware instant as the naive UTC value the event times are stored as."""
    return at.astimezone(UTC).replace(tzinfo=None)


def _micros(us: int) -> str:
    """SQL interval literal of us microseconds."""
    return f"INTERVAL '{int(us)} microseconds'"


_SETTINGS = (
    "DateStyle TO ISO",  # CAST(timestamp AS text) is 2026-06-15 08:50:00
    "enable_hashagg TO off",  # grouping a year's events: a sort (in day order) costs 2/3 of a spilled hash
    "jit TO off",  # compiling the long statement costs what it saves
)


def payroll_days(db: Database, req: PayrollRequest) -> Iterator[tuple[date, str]]:
    """(local date, that day's CSV rows as text) for each day of the range with rows, in order,
    streamed from one COPY (PostgreSQL only; inside read_snapshot, so it reads the report's snapshot)."""
    statement, params = payroll_statement(req)
    with db.session() as s:
        raw = s.connection().connection.driver_connection
        if raw is None:
            raise StoreError("the report's database connection is closed")
        with raw.cursor() as cur:
            for setting in _SETTINGS:  # this transaction only (the snapshot's: rolled back at its end)
                cur.execute(f"SET LOCAL {setting}")
            with cur.copy(statement, params) as copy:
                copy.set_types(["date", "text"])
                for day, text in copy.rows():
                    yield day, str(text)


def offset_spans(zone: Any, utc_from: datetime, utc_to: datetime) -> list[OffsetSpan]:
    """The UTC offsets of a zone (a tzinfo) from utc_from to utc_to (aware) as spans in time order:
    found hour by hour, each change pinned to its second."""
    def offset(at: datetime) -> int:
        delta = at.astimezone(zone).utcoffset()
        return int(delta.total_seconds()) if delta is not None else 0

    def text(at: datetime) -> str:
        return at.astimezone(zone).isoformat(timespec="seconds")[19:]

    spans: list[OffsetSpan] = []
    at = utc_from.astimezone(UTC)
    current, label = offset(at), text(at)
    step = timedelta(hours=1)
    while at < utc_to:
        nxt = min(at + step, utc_to.astimezone(UTC))
        if offset(nxt) != current:
            lo, hi = at, nxt  # offset(lo) == current != offset(hi): the change is in (lo, hi]
            while hi - lo > timedelta(seconds=1):
                mid = lo + (hi - lo) / 2
                mid = mid.replace(microsecond=0)
                if offset(mid) == current:
                    lo = mid
                else:
                    hi = mid
            spans.append(OffsetSpan(hi, current, label))
            current, label = offset(hi), text(hi)
            at = hi
            continue
        at = nxt
    spans.append(OffsetSpan(None, current, label))
    return spans
