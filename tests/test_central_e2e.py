"""Doors and central together, end to end, as real processes: a central (`kiosk serve`, role central) and two
doors (role door) on looped replay cameras, added with `kiosk doors add` and enrolled with `kiosk central
enrol`. The doors are real door processes (tests/fake_kiosk.py: `kiosk run`'s service with the fake face
analyzer of kiosk.vision.fake, whose faces are coloured squares in JPEG frames), and the person is enrolled
on the central with enrol() and that analyzer from drawn photo files: no model is loaded, so a check-in
takes a fraction of a second and the scene loops every ~2 s. Door A talks to the central through a small
TCP proxy of the test's own, which can hold the answer of a push (so the door is killed in the middle of
an upload, deterministically). One scenario, in this order:

(a) a person enrolled on the central reaches both doors within sync_s and is recognised there; (b) the
    central killed (SIGKILL) while both doors keep checking the person in, started again: every event stored
    exactly once; (c) door A killed (SIGKILL) while the central's answer to its push is held, restarted: no
    loss, no duplicate; (d) an old batch replayed by hand: repeats, no error; the same numbers with other
    events: 409, nothing stored; (g) in at one door, out at the other: the central's daily report has one day
    with an in and an out; (f) the person removed on the central: within sync_s both doors stop recognising
    them and no template of theirs is left in either door's files; (e) door B revoked: its pushes are refused
    (403), it shows so (status, screen) and keeps checking people in locally. At the end (SIGTERM, exit 0)
    every door's local events are compared with the central's rows by (device, seq).

The central's database comes from one place (`central_db`), parametrised over SQLite and PostgreSQL.
One shorter test keeps the real models: enrolled with `kiosk enroll` from committed photos on the central,
the person is recognised by a real `kiosk run` door and the event reaches the central.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
import yaml
from cli_helpers import run_cli
from door_helpers import PEOPLE, free_port_below_ephemeral, person_photos
from fake_kiosk import enrol_fake_person, fake_photos, write_fake_scene

from kiosk import store
from kiosk.central_client import event_json
from kiosk.config import Settings, load_settings
from kiosk.door_status import DoorStatus, read_status_file
from kiosk.door_sync import event_uuid
from kiosk.replay_scenes import make_scene
from kiosk.screen.state import REVOKED_NOTICE
from kiosk.store import EventInfo

ROOT = Path(__file__).resolve().parents[1]
FAKE_KIOSK = ROOT / "tests" / "fake_kiosk.py"
API = "/api/v1/door"
# sync_s: also the door's first retry after a failed round, then 2x, 4x: 0.7 s puts a retry 4.9 s after the
# first failure, soon after the killed central is back in (b) (two check-ins and a restart, ~3.5 s).
SYNC_S = 0.7
SLACK_S = 3.0  # a sync round, a status write (0.5 s) and a busy 2-core machine on top of sync_s
DEADLINE_S = 60.0  # the longest wait for something the processes do on their own
# The fake scene: 20 frames/s, the face walks up (0.2 s), holds still 0.4 s (steady_frames, then one or two
# analysed frames), leaves (0.1 s), with 0.2 s of empty frames before and after it, so 0.4 s between visits
# when looped (twice the door's leave_s: every loop is a new visit, and with cooldown 0 a new event): 1.1 s
# a loop. A door that falls behind gets its frames later, never in a burst (the replay camera's pacing).
FAKE_FPS = 20.0
FAKE_STEADY_S = 0.4
FAKE_EMPTY_S = 0.2
FAKE_LEAVE_S = 0.2


# -- in/out on the merged stream (store level, fast) -----------------------------------------------------------

def _push(db: store.Database, door: int, seq: int, at: datetime, pid: int | None, kind: str, mode: str) -> None:
    event = store.DoorEvent(seq=seq, uuid=f"{door}-{seq}", person_id=pid, at=at, kind=kind)
    store.ingest_events(db, door, [event], pairing=store.Pairing(mode, ZoneInfo("Europe/Berlin")), now=at)


def _kinds(db: store.Database, pid: int) -> list[tuple[str, str, str | None]]:
    """(local time HH:MM, kind, device) of a person's events in time order."""
    events = sorted(store.events_after(db, 0, 1000), key=lambda e: (e.occurred_at, e.id))
    berlin = ZoneInfo("Europe/Berlin")
    return [(e.occurred_at.astimezone(berlin).strftime("%d %H:%M"), e.kind, e.device_id) for e in events
            if e.person_id == pid]


@pytest.mark.parametrize("mode", ["first_last", "toggle"])
def test_in_and_out_are_decided_on_the_merged_stream_of_all_doors(db: store.Database, mode: str) -> None:
    """Each door says "in" for its first sighting of the day; the central decides on all doors' events in
    event time order, also when a door uploads late, and keeps hand corrections and other days as they are."""
    ada = store.add_person(db, "E1", "Ada").id
    bob = store.add_person(db, "E2", "Bob").id
    door_a = store.add_door(db, "Door A").door.id
    door_b = store.add_door(db, "Door B").door.id
    day = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)  # 08:00 in Berlin
    _push(db, door_a, 1, day, ada, "in", mode)
    _push(db, door_b, 1, day.replace(hour=16), ada, "in", mode)  # she leaves by door B
    _push(db, door_b, 2, day.replace(hour=16, minute=5), bob, "in", mode)  # Bob's own day
    assert _kinds(db, ada) == [("02 08:00", "in", "door-a"), ("02 17:00", "out", "door-b")]
    assert _kinds(db, bob) == [("02 17:05", "in", "door-b")]
    # door A was offline: its earlier sighting arrives last, and the day is decided again
    _push(db, door_a, 2, day.replace(hour=6), ada, "in", mode)
    expected = ["in", "out", "out"] if mode == "first_last" else ["in", "out", "in"]
    assert [k for _, k, _ in _kinds(db, ada)] == expected
    # a hand correction keeps its kind; the next day starts with "in" again
    store.add_correction(db, ada, day.replace(hour=12), "out", actor="admin", note="lunch",
                         now=day.replace(hour=20))
    _push(db, door_a, 3, day.replace(hour=13), ada, "out", mode)
    _push(db, door_b, 3, day.replace(day=3, hour=7), ada, "out", mode)
    kinds = _kinds(db, ada)
    assert kinds[2] == ("02 13:00", "out", "manual")
    assert kinds[-1] == ("03 08:00", "in", "door-b")
    day_kinds = [k for _, k, _ in kinds[:-1]]
    assert day_kinds == (["in", "out", "out", "in", "out"] if mode == "toggle" else ["in"] + ["out"] * 4)


# -- the scenario with real processes --------------------------------------------------------------------------

FAKE_PERSON = 0  # kiosk.vision.fake's person 0: photo 0 walks up to the doors, photos 1-3 are enrolled

# -- the central's database: one place ----------------------------------------------------------------------

@dataclass(frozen=True)
class CentralDb:
    """The central's `database:` settings and a SQLAlchemy URL to read it in the test."""

    settings: dict[str, Any]
    url: str


@pytest.fixture(params=["sqlite", "postgresql"])
def central_db(request: pytest.FixtureRequest, tmp_path: Path) -> CentralDb:
    if request.param == "sqlite":
        path = tmp_path / "central" / "central.db"
        path.parent.mkdir()
        return CentralDb({"path": str(path), "backups_kept": 0}, f"sqlite:///{path}")
    database_fields = Settings.model_fields["database"].annotation.model_fields  # type: ignore[union-attr]
    if "url" not in database_fields:
        pytest.skip("database.url is not a setting yet (the store on PostgreSQL is another part of issue 13)")
    url = request.getfixturevalue("pg_server").create_database("kiosk_e2e")
    return CentralDb({"url": str(url)}, str(url))


# -- processes -------------------------------------------------------------------------------------------------

def kiosk_argv(*args: str | Path) -> list[str]:
    """The command line of `kiosk ARGS` (python -m kiosk.cli)."""
    return [sys.executable, "-m", "kiosk.cli", *map(str, args)]


def fake_door_argv(config: Path) -> list[str]:
    """The command line of a door process with the fake face analyzer (tests/fake_kiosk.py)."""
    return [sys.executable, str(FAKE_KIOSK), "--config", str(config), "run"]


@dataclass
class Proc:
    """A process (argv) with its log file (appended across restarts)."""

    name: str
    argv: list[str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None
    terminated: bool = False  # SIGTERM sent to this run

    def start(self) -> Proc:
        self.terminated = False
        env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK")} | {"PYTHONWARNINGS": "ignore"}
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(self.argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL, and wait for it (then it counts as not started)."""
        if self.alive():
            assert self.popen is not None
            self.popen.send_signal(signal.SIGKILL)
            assert self.popen.wait(10) == -signal.SIGKILL
        self.popen = None

    def terminate(self) -> None:
        """SIGTERM, once (a second one during the interpreter's exit would kill it), without waiting."""
        if self.alive() and not self.terminated:
            assert self.popen is not None
            self.popen.send_signal(signal.SIGTERM)
            self.terminated = True

    def stop(self) -> int | None:
        """SIGTERM (unless sent already), wait; its exit status (None: it was not running)."""
        if self.popen is None:
            return None
        if self.alive():
            self.terminate()
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        return self.popen.returncode

    def tail(self) -> str:
        return f"--- {self.name} ---\n" + (self.log.read_text(errors="replace")[-2500:] if self.log.exists() else "")


class Cluster:
    """The processes of the scenario, for wait() to report on."""

    def __init__(self) -> None:
        self.procs: list[Proc] = []
        self.waited: list[tuple[str, float]] = []  # (what, seconds) of each wait, for the timings

    def wait(self, predicate: Callable[[], object], what: str, timeout: float = DEADLINE_S) -> float:
        """Poll predicate until true; seconds it took. Fails with the logs when the deadline passes or a
        process that should run has died."""
        start = time.monotonic()
        while True:
            if predicate():
                took = time.monotonic() - start
                self.waited.append((what, took))
                return took
            dead = [p for p in self.procs if p.popen is not None and not p.alive()]
            if time.monotonic() - start > timeout or dead:
                why = f"{', '.join(p.name for p in dead)} exited" if dead else f"{timeout:.0f} s passed"
                pytest.fail(f"waiting for {what}: {why}\n" + "\n".join(p.tail() for p in self.procs))
            time.sleep(0.1)


def _wait_port(port: int, proc: Proc, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if not proc.alive():
                break
            time.sleep(0.1)
    pytest.fail(f"{proc.name} does not listen on {port}\n{proc.tail()}")


# -- a proxy that can hold the central's answer to a push ---------------------------------------------------------

@dataclass
class Exchange:
    """One request through the proxy: method, path, the event seqs it carried, the central's answer (JSON)."""

    method: str
    path: str
    seqs: list[int]
    answer: dict[str, Any] | None = None


@dataclass
class Proxy:
    """127.0.0.1:port -> the central, one request per connection (the door's urllib closes each). With
    hold set, the next push with events is forwarded, its answer read and kept back (held is set), and the
    connection left open until released: the door waits for an answer the central has already given."""

    upstream: int
    port: int = 0
    hold: bool = False
    held: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    exchanges: list[Exchange] = field(default_factory=list)

    def start(self) -> Proxy:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def close(self) -> None:
        self.release.set()
        self.server.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client:
            request = _read_http(client)
            if request is None:
                return
            head, body = request
            method, path = head.split(b" ", 2)[:2]
            seqs = [e["seq"] for e in json.loads(body).get("events", [])] if body else []
            exchange = Exchange(method.decode(), path.decode(), seqs)
            try:
                with socket.create_connection(("127.0.0.1", self.upstream), timeout=30) as up:
                    up.sendall(head + body)
                    answer = _read_http(up)
            except OSError:
                return  # the central is down: the door sees the connection drop
            if answer is None:
                return
            exchange.answer = json.loads(answer[1] or b"null")
            self.exchanges.append(exchange)
            if self.hold and seqs:
                self.hold = False
                self.held.set()
                self.release.wait(60)
                return  # the answer is never delivered
            client.sendall(answer[0] + answer[1])


def _read_http(sock: socket.socket) -> tuple[bytes, bytes] | None:
    """(head with its blank line, body) of one HTTP message with Content-Length (or none), or None."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        body += chunk
    return head + b"\r\n\r\n", body


# -- reading what the processes left -------------------------------------------------------------------------------

@dataclass
class Door:
    """A door of the scenario: its device id on the central, config, files and process."""

    device_id: str
    config: Path
    settings: Settings
    proc: Proc

    @property
    def db_path(self) -> Path:
        return Path(self.settings.database.path)

    def events(self) -> list[tuple[int, int | None, str]]:
        """(id, person id, kind) of its local events, by id (read-only connection)."""
        con = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10)
        try:
            return [(int(i), p, k) for i, p, k in
                    con.execute("SELECT id, person_id, kind FROM attendance_events ORDER BY id")]
        finally:
            con.close()

    def max_id(self) -> int:
        return max((e[0] for e in self.events()), default=0)

    def status(self) -> DoorStatus | None:
        try:
            status, _ = read_status_file(self.settings.status_path)
        except (OSError, ValueError):
            return None
        return status

    def sync_state(self) -> dict[str, Any]:
        path = self.db_path.parent / "central_sync.json"
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def token(self) -> str:
        return self.settings.token_path.read_text().strip()

    def files_bytes(self) -> bytes:
        """Every file of its database (main, -wal, -shm, backups beside it)."""
        return b"".join(p.read_bytes() for p in self.db_path.parent.glob(self.db_path.name + "*") if p.is_file())


class Central:
    """Reads the central's database (SQLite or PostgreSQL) through SQLAlchemy."""

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url)

    def rows(self, sql: str, **params: object) -> list[tuple[Any, ...]]:
        with self.engine.connect() as con:
            return [tuple(r) for r in con.execute(sa.text(sql), params)]

    def door_events(self, device_id: str) -> list[tuple[int, int | None, str, datetime]]:
        """(door_seq, person_id, kind, occurred_at) of a door's pushed events, by seq."""
        return [(int(seq), pid, kind, at) for seq, pid, kind, at in self.rows(
            "SELECT door_seq, person_id, kind, occurred_at FROM attendance_events WHERE device_id = :d "
            "AND door_seq IS NOT NULL ORDER BY door_seq", d=device_id)]

    def gallery_version(self) -> int:
        return int(self.rows("SELECT coalesce(max(version), 0) FROM gallery_changes")[0][0])

    def exactly_once(self) -> None:
        """No (device, seq) twice (the unique constraint says so too) and every pushed event has a uuid."""
        total, distinct, uuids = self.rows(
            "SELECT count(*), count(DISTINCT device_id || ':' || CAST(door_seq AS VARCHAR(20))), count(event_uuid) "
            "FROM attendance_events WHERE door_seq IS NOT NULL")[0]
        assert total == distinct == uuids


def _call(url: str, body: dict[str, Any] | None, token: str) -> tuple[int, dict[str, Any]]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST", headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=20) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _local_infos(door: Door, limit: int) -> list[EventInfo]:
    """The door's first events as the door reads them to push them."""
    with store.open_database(door.db_path, create=False) as db:
        return store.events_after(db, 0, limit)


# -- the scenario ---------------------------------------------------------------------------------------------------

@pytest.fixture
def cluster() -> Iterator[Cluster]:
    c = Cluster()
    yield c
    for p in c.procs:
        p.stop()
    print("\n" + "\n".join(f"  waited {took:4.1f} s for {what}" for what, took in c.waited))


def _central_config(path: Path, db: CentralDb, port: int) -> Path:
    path.write_text(yaml.safe_dump({
        "role": "central", "database": db.settings, "site": {"timezone": "UTC"},
        "attendance": {"mode": "first_last"}, "web": {"host": "127.0.0.1", "port": port}}))
    return path


def _start_central(tmp_path: Path, db: CentralDb, cluster: Cluster) -> tuple[Path, Proc, int]:
    """(config, process, port) of a migrated central, started and listening."""
    port = free_port_below_ephemeral()
    config = _central_config(tmp_path / "central.yaml", db, port)
    migrated = run_cli("db", "upgrade", config=config)
    assert migrated.returncode == 0, migrated.stderr
    server = Proc("central", kiosk_argv("--config", config, "serve"), tmp_path / "central.log")
    cluster.procs.append(server)
    server.start()
    _wait_port(port, server)
    return config, server, port


def _door(tmp_path: Path, name: str, device_id: str, url: str, frames: Path, central_config: Path,
          cluster: Cluster, *, fake: bool = True) -> Door:
    """A door added on the central and enrolled with it (`kiosk doors add`, `kiosk central enrol`), not
    started: with fake, a fake-analyzer door process on the fake scene's timing; else `kiosk run`."""
    folder = tmp_path / device_id
    folder.mkdir()
    config = folder / "kiosk.yaml"
    fps = FAKE_FPS if fake else 5
    attendance: dict[str, Any] = {"cooldown_s": 0} | ({"leave_s": FAKE_LEAVE_S} if fake else {})
    config.write_text(yaml.safe_dump({
        "role": "door",
        "site": {"timezone": "UTC", "device_id": device_id},
        "database": {"path": str(folder / "kiosk.db"), "backups_kept": 0},
        "expression": {"enabled": False},
        "attendance": attendance,
        "camera": {"type": "replay", "options": {"path": str(frames), "fps": fps, "loop": True},
                   "retry_initial_s": 0.2, "retry_max_s": 1.0},
        "service": {"status_interval_s": 0.5, "gallery_check_s": 0.5},
        "screen": {"port": 0},
        "central": {"url": url, "sync_s": SYNC_S, "timeout_s": 5, "batch": 20},
    }))
    added = run_cli("doors", "add", name, "--site", "berlin", config=central_config)
    assert added.returncode == 0, added.stderr
    code = next(line.split(": ", 1)[1] for line in added.stdout.splitlines() if line.startswith("enrolment code"))
    enrolled = run_cli("central", "enrol", url, code.strip(), config=config)
    assert enrolled.returncode == 0, enrolled.stderr
    assert f"enrolled as {device_id}" in enrolled.stdout
    argv = fake_door_argv(config) if fake else kiosk_argv("--config", config, "run")
    proc = Proc(name, argv, folder / "door.log")
    cluster.procs.append(proc)
    return Door(device_id, config, load_settings(config, environ={}), proc)


def _recognised(door: Door, pid: int, after: int = 0) -> bool:
    return any(p == pid and i > after for i, p, _ in door.events())


@pytest.mark.slow
def test_two_doors_and_a_central_end_to_end(tmp_path: Path, central_db: CentralDb, cluster: Cluster) -> None:
    central_config, server, port = _start_central(tmp_path, central_db, cluster)
    frames = tmp_path / "frames"  # the person walks up, stays, leaves; looped at both doors
    loop_s = write_fake_scene(frames, FAKE_PERSON, FAKE_FPS, steady_s=FAKE_STEADY_S, empty_s=FAKE_EMPTY_S)
    assert loop_s <= 1.1
    proxy = Proxy(port).start()
    try:
        a = _door(tmp_path, "Door A", "door-a", f"http://127.0.0.1:{proxy.port}", frames, central_config, cluster)
        b = _door(tmp_path, "Door B", "door-b", f"http://127.0.0.1:{port}", frames, central_config, cluster)

        def enrol() -> None:  # `kiosk enroll` from photo files, with the fake analyzer
            result = enrol_fake_person(central_config, "Ada Lovelace", "E1", fake_photos(tmp_path / "photos",
                                                                                         FAKE_PERSON))
            assert result.templates_added == 3, result

        _scenario(central_config, Central(central_db.url), server, port, proxy, a, b, cluster, enrol)
    finally:
        proxy.close()


@pytest.mark.slow
def test_the_real_models_recognise_at_a_door_a_person_enrolled_on_the_central(tmp_path: Path,
                                                                               cluster: Cluster) -> None:
    """The one run with the real models: `kiosk enroll` from committed photos on the central (SQLite), a
    `kiosk run` door recognises the person from another photo, and the event reaches the central."""
    path = tmp_path / "central" / "central.db"
    path.parent.mkdir()
    db = CentralDb({"path": str(path), "backups_kept": 0}, f"sqlite:///{path}")
    central_config, server, port = _start_central(tmp_path, db, cluster)
    central = Central(db.url)
    frames = tmp_path / "frames"
    make_scene([person_photos(PEOPLE[0])[0]], None, frames, 5.0, empty_s=1.5, tail_s=0.5)
    door = _door(tmp_path, "Door A", "door-a", f"http://127.0.0.1:{port}", frames, central_config, cluster,
                 fake=False)
    door.proc.start()  # loads its models while the central enrols
    enrolled = run_cli("enroll", "--name", "Debbie Reynolds", "--employee-id", "E1",
                       *map(str, person_photos(PEOPLE[0])[1:]), config=central_config)
    assert enrolled.returncode == 0, enrolled.stderr
    pid = int(central.rows("SELECT id FROM people WHERE employee_id = 'E1'")[0][0])
    version = central.gallery_version()
    cluster.wait(lambda: (door.sync_state().get("gallery_version") or 0) >= version, "the gallery at the door")
    cluster.wait(lambda: _recognised(door, pid), "the person recognised at the door")
    seq = next(i for i, p, _ in door.events() if p == pid)
    cluster.wait(lambda: seq in {s for s, p, _, _ in central.door_events(door.device_id) if p == pid},
                 "the check-in on the central")
    templates = [bytes(t) for (t,) in central.rows("SELECT embedding FROM face_templates WHERE person_id = :p",
                                                   p=pid)]
    assert len(templates) == len(person_photos(PEOPLE[0])) - 1
    assert all(t in door.files_bytes() for t in templates)  # the door matched on the central's templates
    assert door.proc.stop() == 0, door.proc.tail()
    central.exactly_once()
    assert server.stop() == 0, server.tail()


def _scenario(central_config: Path, central: Central, server: Proc, port: int, proxy: Proxy, a: Door, b: Door,
              cluster: Cluster, enrol: Callable[[], None]) -> None:
    doors = (a, b)
    t0 = time.monotonic()

    def mark(phase: str) -> None:
        print(f"  [{time.monotonic() - t0:5.1f} s] {phase} done")

    for door in doors:
        door.proc.start()
    cluster.wait(lambda: all(d.status() and d.status().central and d.status().central.online for d in doors),
                 "both doors online")
    cluster.wait(lambda: all(d.max_id() >= 1 for d in doors), "an unknown face at each door")
    assert all(p is None for d in doors for _, p, _ in d.events())  # nobody is enrolled yet

    mark("start")

    # (a) enrol on the central, from photo files: both doors have the person within sync_s
    enrol()
    pid = int(central.rows("SELECT id FROM people WHERE employee_id = 'E1'")[0][0])
    version = central.gallery_version()
    took = cluster.wait(lambda: all((d.sync_state().get("gallery_version") or 0) >= version for d in doors),
                        "the new gallery at both doors")
    assert took <= SYNC_S + SLACK_S, f"the gallery reached the doors in {took:.1f} s (sync_s {SYNC_S})"
    recognised_in = cluster.wait(lambda: all(_recognised(d, pid) for d in doors), "the person recognised at both")
    print(f"\n(a) gallery at both doors {took:.1f} s after enrolment; recognised at both {recognised_in:.1f} s later")

    mark("a")

    # (b) the central killed; both doors keep checking in; back again: every event once
    server.kill()
    down_at = {d.device_id: d.max_id() for d in doors}
    cluster.wait(lambda: all(d.max_id() >= down_at[d.device_id] + 2 for d in doors), "check-ins while down")
    cluster.wait(lambda: all(d.status().central.online is False for d in doors), "both doors see it down")
    newest = {d.device_id: d.max_id() for d in doors}
    server.start()
    _wait_port(port, server)
    took = cluster.wait(lambda: all((d.sync_state().get("pushed_seq") or 0) >= newest[d.device_id] for d in doors),
                        "the backlog uploaded")
    print(f"(b) backlog of {sum(newest.values()) - sum(down_at.values())} events uploaded {took:.1f} s after restart")
    for door in doors:
        pushed = door.sync_state()["pushed_seq"]
        held = [seq for seq, *_ in central.door_events(door.device_id)]
        assert [i for i, *_ in door.events() if i <= pushed] == [s for s in held if s <= pushed]
    central.exactly_once()

    mark("b")

    # (c) door A killed while the central's answer to its push is held: no loss, no duplicate
    proxy.hold = True
    cluster.wait(proxy.held.is_set, "a push of door A on its way")
    in_flight = next(x for x in reversed(proxy.exchanges) if x.seqs)
    a.proc.kill()
    proxy.release.set()
    stored = {seq for seq, *_ in central.door_events(a.device_id)}
    assert set(in_flight.seqs) <= stored  # the central has the batch ...
    assert (a.sync_state().get("pushed_seq") or 0) < max(in_flight.seqs)  # ... the door never heard so
    a.proc.start()
    cluster.wait(lambda: (a.sync_state().get("pushed_seq") or 0) >= max(in_flight.seqs), "door A catching up")
    again = [x for x in proxy.exchanges if x.seqs and set(x.seqs) & set(in_flight.seqs) and x is not in_flight]
    assert again and again[0].answer and again[0].answer["repeated"] >= 1  # sent again, skipped there
    central.exactly_once()

    mark("c")

    # (d) an old batch replayed by hand: repeats, no error; other events under those numbers: 409
    old = _local_infos(a, 10)
    body = {"clock": datetime.now(UTC).isoformat(), "version": "0.1.0", "backlog": 0,
            "events": [event_json(e, event_uuid(a.device_id, e.id, e.occurred_at)) for e in old]}
    before = len(central.door_events(a.device_id))
    status, answer = _call(f"http://127.0.0.1:{port}{API}/events", body, a.token())
    assert status == 200 and answer["stored"] == 0 and answer["repeated"] == len(old), answer
    forged = {**body, "events": [{**e, "uuid": f"another-{e['seq']}"} for e in body["events"]]}
    status, answer = _call(f"http://127.0.0.1:{port}{API}/events", forged, a.token())
    assert (status, answer["error"]) == (409, "seq_conflict")
    assert len(central.door_events(a.device_id)) == before

    mark("d")

    # (g) in at one door, out at the other: one day with an in and an out in the central's report
    today = datetime.now(UTC).date()
    mine = [(at, device, seq, kind) for device in ("door-a", "door-b")
            for seq, p, kind, at in central.door_events(device) if p == pid]
    mine.sort()
    assert {device for _, device, _, _ in mine} == {"door-a", "door-b"}
    assert [k for *_, k in mine] == ["in"] + ["out"] * (len(mine) - 1)
    first_at = {d: min(at for at, device, _, _ in mine if device == d) for d in ("door-a", "door-b")}
    later = max(first_at, key=lambda d: first_at[d])
    later_door = a if later == "door-a" else b
    seq = min(s for at, device, s, _ in mine if device == later)
    assert dict((i, k) for i, _, k in later_door.events())[seq] == "in"  # the door's provisional answer
    assert dict((s, k) for s, _, k, _ in central.door_events(later))[seq] == "out"  # the central's
    report = run_cli("report", "daily", "--date", today.isoformat(), "--format", "json", config=central_config)
    assert report.returncode == 0, report.stderr
    rows = [r for r in json.loads(report.stdout)["people"] if r["employee_id"] == "E1"]
    assert len(rows) == 1 and rows[0]["first_in"] and rows[0]["last_out"] and not rows[0]["open"], rows

    mark("g")

    # (f) removed on the central: within sync_s no door recognises them, no template bytes left at the doors
    templates = [bytes(t) for (t,) in central.rows("SELECT embedding FROM face_templates WHERE person_id = :p",
                                                   p=pid)]
    assert templates and all(any(t in d.files_bytes() for t in templates) for d in doors)
    removed = run_cli("people", "remove", "E1", "--yes", config=central_config)
    assert removed.returncode == 0, removed.stderr
    version = central.gallery_version()
    took = cluster.wait(lambda: all((d.sync_state().get("gallery_version") or 0) >= version for d in doors),
                        "the removal at both doors")
    assert took <= SYNC_S + SLACK_S, f"the removal reached the doors in {took:.1f} s (sync_s {SYNC_S})"
    cluster.wait(lambda: all(d.status().gallery.people == 0 for d in doors), "both door loops reloaded")
    reloaded = {d.device_id: d.max_id() for d in doors}
    cluster.wait(lambda: all(d.max_id() > reloaded[d.device_id] for d in doors), "the face again at both doors")
    for door in doors:
        assert all(p is None for i, p, _ in door.events() if i > reloaded[door.device_id])
        raw = door.files_bytes()
        assert not any(t in raw for t in templates), f"a template of the removed person is in {door.db_path}"
    print(f"(f) removal at both doors {took:.1f} s after `kiosk people remove`")

    mark("f")

    # (e) door B revoked: refused (403), shows it, keeps checking in locally
    revoked = run_cli("doors", "revoke", "Door B", config=central_config)
    assert revoked.returncode == 0, revoked.stderr
    cluster.wait(lambda: b.status().central.revoked, "door B showing revoked")
    held_b = len(central.door_events(b.device_id))
    local_b = b.max_id()
    cluster.wait(lambda: b.max_id() >= local_b + 2, "check-ins at the revoked door")
    status, answer = _call(f"http://127.0.0.1:{port}{API}/events", {"events": []}, b.token())
    assert (status, answer["error"]) == (403, "revoked")
    assert len(central.door_events(b.device_id)) == held_b and b.status().central.revoked
    screen = b.status().screen
    assert screen
    with urllib.request.urlopen(screen.rstrip("/") + "/state.json", timeout=10) as page:
        shown = json.loads(page.read())
    assert shown["notice"] == REVOKED_NOTICE and shown["kind"] != "offline"

    mark("e")

    # the end: every door's events on the central once, and nothing the door does not have
    for door in doors:
        door.proc.terminate()
    for door in doors:
        assert door.proc.stop() == 0, door.proc.tail()
    server.terminate()  # nothing reaches it any more; its rows are read while it stops
    for door in doors:  # what the central holds is the door's own, in order, up to at least pushed_seq
        local = [i for i, *_ in door.events()]
        held = [seq for seq, *_ in central.door_events(door.device_id)]
        pushed = door.sync_state()["pushed_seq"]
        assert held == local[:len(held)] and held[-1] >= pushed
        tail = len(local) - len(held)  # recorded after the last push: waiting in the door's file
        assert tail >= 2 if door is b else tail <= 5, (door.device_id, tail)
    central.exactly_once()
    assert server.stop() == 0, server.tail()
