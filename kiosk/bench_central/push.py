"""Simulated doors pushing their outboxes to a central at once, over real HTTP (one thread and one
keep-alive connection per door), with the faults a real door meets:

- a lost answer: after one of its batches (chosen by seed) the door pushes that batch again, which
  the central must skip (stored 0, repeated all);
- a push sent twice at once: every fifth door sends its first batch on two connections together
  (it timed out and pushed again while the first was still in flight): stored once between them;
- a failed push (no connection, 503): retried like a door does, backing off, the batch sent again.

The first ALONE doors hold their last batch back and push it once all others are done, one door
at a time: the latency of a batch on an otherwise idle central (alone_ms), beside the latencies
under 50 doors at once, which are mostly waiting for a worker thread.

Every answer is checked against what it must say (last_seq, stored, repeated); a mismatch is counted.
Latencies are wall milliseconds from sending the request to reading the whole answer.
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kiosk.bench_central.workload import Door, events_json

logger = logging.getLogger(__name__)

PATH = "/api/v1/door/events"
VERSION = "bench"
TIMEOUT_S = 120.0  # one request (a push queued behind 49 others still answers well within it)
RETRIES = 6  # attempts after a failed push (no connection, 503), 0.25 s doubling
TWIN_EVERY = 5  # every fifth door sends its first batch twice at once
ALONE = 5  # doors that push their last batch alone at the end


@dataclass
class Answer:
    """One push's outcome: HTTP status (0: no answer), the JSON answer, milliseconds."""

    status: int
    body: dict[str, Any]
    ms: float


@dataclass
class DoorFigures:
    """What one door saw: latencies (ms) of first pushes and of repeats, totals and problems."""

    first_ms: list[float] = field(default_factory=list)
    repeat_ms: list[float] = field(default_factory=list)
    stored: int = 0
    repeated: int = 0
    pushes: int = 0
    repeat_pushes: int = 0
    retries: int = 0
    mismatches: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    held_back: tuple[bytes, int, int] | None = None  # (events JSON, count, last seq) pushed alone later
    alone_ms: list[float] = field(default_factory=list)


class DoorClient:
    """One door's HTTP connection to the central (reconnects after a failure)."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.conn: http.client.HTTPConnection | None = None

    def push(self, tail: bytes, backlog: int) -> Answer:
        """POST one batch (its events' JSON in tail) with the door's clock now; status 0 on no answer."""
        head = json.dumps({"clock": datetime.now(UTC).isoformat(), "version": VERSION, "backlog": backlog})
        body = head[:-1].encode() + b',"events":' + tail + b"}"
        t0 = time.perf_counter()
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT_S)
            self.conn.request("POST", PATH, body=body, headers=self.headers)
            response = self.conn.getresponse()
            raw = response.read()
            status = response.status
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            return Answer(0, {"error": "no_answer", "message": str(exc)}, (time.perf_counter() - t0) * 1000)
        ms = (time.perf_counter() - t0) * 1000
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = {"error": "not_json", "message": raw[:200].decode(errors="replace")}
        if response.will_close:
            self.close()
        return Answer(status, answer if isinstance(answer, dict) else {"error": "not_an_object"}, ms)

    def close(self) -> None:
        """Drop the connection (the next push opens a new one)."""
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def _retrying(client: DoorClient, tail: bytes, backlog: int, fig: DoorFigures) -> Answer:
    """Push until an answer that is not 'try again' (no answer, 503), at most RETRIES more times."""
    answer = client.push(tail, backlog)
    for attempt in range(RETRIES):
        if answer.status not in (0, 503):
            break
        fig.retries += 1
        logger.info("push failed (%s %s); retrying", answer.status, answer.body.get("message", ""))
        time.sleep(0.25 * 2 ** attempt)
        answer = client.push(tail, backlog)
    return answer


def _check(fig: DoorFigures, door: Door, answer: Answer, n: int, last: int | None, *, repeat: bool) -> bool:
    """Count the answer into fig (last None: a heartbeat, any last_seq will do); False (and an
    error noted) when the door must stop."""
    if answer.status != 200:
        fig.errors.append(f"{door.device_id}: HTTP {answer.status} {answer.body.get('error')}: "
                          f"{str(answer.body.get('message', ''))[:160]}")
        return False
    stored, repeated = int(answer.body.get("stored", -1)), int(answer.body.get("repeated", -1))
    fig.stored += max(stored, 0)
    fig.repeated += max(repeated, 0)
    wrong_last = last is not None and answer.body.get("last_seq") != last
    if wrong_last or stored + repeated != n or (repeat and stored != 0):
        fig.mismatches.append(f"{door.device_id}: answer {answer.body} for {n} events up to seq {last}"
                              f"{' (a repeat)' if repeat else ''}")
    return True


def _twin(client: DoorClient, port: int, token: str, tail: bytes, backlog: int,
          fig: DoorFigures) -> list[Answer]:
    """The same batch on two connections at once; both answers."""
    other = DoorClient(port, token)
    answers: list[Answer] = []
    gate = threading.Barrier(2)

    def send(c: DoorClient) -> None:
        gate.wait()
        answers.append(_retrying(c, tail, backlog, fig))

    helper = threading.Thread(target=send, args=(other,), daemon=True)
    helper.start()
    send(client)
    helper.join()
    other.close()
    return answers


def run_door(index: int, door: Door, token: str, port: int, batch: int, start: threading.Barrier,
             fig: DoorFigures, seed: int = 2, *, hold_back: bool = False) -> None:
    """Push the door's outbox once the start barrier opens (see the module docstring); with
    hold_back and two batches or more, all but the last (left in fig.held_back)."""
    client = DoorClient(port, token)
    batches = door.batches(batch)
    if hold_back and len(batches) >= 2:
        last = batches.pop()
        fig.held_back = (events_json(last), len(last), int(last[-1]["seq"]))
    tails = [events_json(b) for b in batches] or [b"[]"]  # nothing to push: one heartbeat
    counts = [len(b) for b in batches] or [0]
    lasts: list[int | None] = [int(b[-1]["seq"]) for b in batches] or [None]
    lost_answer = random.Random(seed * 1000 + index).randrange(len(tails))
    left = sum(counts) + (fig.held_back[1] if fig.held_back else 0)
    start.wait()
    try:
        for k, tail in enumerate(tails):
            if k == 0 and index % TWIN_EVERY == 0 and counts[0]:
                answers = _twin(client, port, token, tail, left, fig)
                fig.pushes += 2
                fig.repeat_pushes += 1
                ok = [_check(fig, door, a, counts[0], lasts[0], repeat=False) for a in answers]
                fig.first_ms.append(min(a.ms for a in answers))
                fig.repeat_ms.append(max(a.ms for a in answers))
                stored = sum(int(a.body.get("stored", 0)) for a in answers)
                if all(ok) and stored != counts[0]:
                    fig.mismatches.append(f"{door.device_id}: a batch pushed twice at once stored {stored} "
                                          f"events of {counts[0]}")
                if not all(ok):
                    return
            else:
                answer = _retrying(client, tail, left, fig)
                fig.pushes += 1
                fig.first_ms.append(answer.ms)
                if not _check(fig, door, answer, counts[k], lasts[k], repeat=False):
                    return
            left -= counts[k]
            if k == lost_answer and counts[k]:  # the answer "got lost": the door pushes it again
                answer = _retrying(client, tail, left + counts[k], fig)
                fig.pushes += 1
                fig.repeat_pushes += 1
                fig.repeat_ms.append(answer.ms)
                if not _check(fig, door, answer, counts[k], lasts[k], repeat=True):
                    return
    except Exception as exc:  # reported in the figures, not lost in a thread
        logger.exception("door %s failed", door.device_id)
        fig.errors.append(f"{door.device_id}: {type(exc).__name__}: {exc}")
    finally:
        client.close()


@dataclass(frozen=True)
class IngestFigures:
    """All doors together: wall seconds from the start to the last answer of the pushes at once,
    events stored in that time, per-door figures."""

    wall_s: float
    stored: int
    doors: list[DoorFigures]

    def all_first_ms(self) -> list[float]:
        """Latencies of every first push (ms)."""
        return [ms for f in self.doors for ms in f.first_ms]

    def all_repeat_ms(self) -> list[float]:
        """Latencies of every repeated push (ms)."""
        return [ms for f in self.doors for ms in f.repeat_ms]

    def all_alone_ms(self) -> list[float]:
        """Latencies of the held-back batches, each pushed alone (ms)."""
        return [ms for f in self.doors for ms in f.alone_ms]


def push_all(doors: list[Door], tokens: list[str], port: int, batch: int) -> IngestFigures:
    """Every door pushes its outbox at once (threads released together), then the held-back
    batches one at a time; wall time of the first part, and the figures."""
    figures = [DoorFigures() for _ in doors]
    start = threading.Barrier(len(doors) + 1)
    threads = [threading.Thread(target=run_door, args=(i, d, t, port, batch, start, f), daemon=True,
                                kwargs={"hold_back": i < ALONE}, name=f"door-{i + 1}")
               for i, (d, t, f) in enumerate(zip(doors, tokens, figures, strict=True))]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    stored = sum(f.stored for f in figures)
    for door, token, fig in zip(doors, tokens, figures, strict=True):
        if fig.held_back is None or fig.errors:
            continue
        tail, n, last = fig.held_back
        client = DoorClient(port, token)
        answer = _retrying(client, tail, n, fig)
        client.close()
        fig.pushes += 1
        fig.alone_ms.append(answer.ms)
        _check(fig, door, answer, n, last, repeat=False)
    return IngestFigures(wall, stored, figures)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by nearest rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100.0 * len(ordered))) - 1]
