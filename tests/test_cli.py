"""The `kiosk` command: config errors, enrol, people, reports, erasure, bad input.

In this process with click's CliRunner (cli_helpers.run_cli); a few smoke tests start the real
`python -m kiosk.cli` process: the entry point, a config error's exit status, and (slow) the
enrol -> report journey, which also runs in-process in the fast tier.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cli_helpers import KioskRunner, run_cli, run_cli_process
from conftest import TEST_DATA

PEOPLE = TEST_DATA / "faces" / "people"
HEAVY_MODULES = ("tensorflow", "torch", "keras", "dlib", "face_recognition", "cv2", "sqlalchemy", "flask")

kiosk = run_cli


@pytest.fixture(params=[pytest.param(run_cli, id="in-process"),
                        pytest.param(run_cli_process, id="process", marks=pytest.mark.slow)])
def any_kiosk(request: pytest.FixtureRequest) -> KioskRunner:
    """The command in this process, and (slow tier) as a real process: the same journey both ways."""
    runner: KioskRunner = request.param
    return runner


@pytest.fixture
def config(tmp_path) -> Path:
    path = tmp_path / "kiosk.yaml"
    path.write_text(f"site:\n  timezone: Europe/Berlin\ndatabase:\n  path: {tmp_path / 'k.db'}\n")
    return path


@pytest.mark.parametrize("kiosk", [pytest.param(run_cli, id="in-process"),
                                   pytest.param(run_cli_process, id="process")])
def test_config_errors_name_key_and_line(tmp_path, kiosk):
    bad = tmp_path / "bad.yaml"
    bad.write_text("site:\n  name: HQ\n  timezon: Europe/Berlin\nattendance:\n  cooldown_s: -5\n")
    proc = kiosk("config", "check", str(bad))
    assert proc.returncode == 2
    assert "line 3: site.timezon: unknown key" in proc.stderr
    assert "line 5: attendance.cooldown_s" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("text, expected", [
    ("site: [1, 2\n", "not valid YAML"),
    ("- a\n- b\n", "top level must be a mapping"),
    ("recognition:\n  max_distance: lots\n", "recognition.max_distance"),
    ("site:\n  timezone: Mars/Olympus\n", "unknown time zone"),
])
def test_config_mistakes_exit_2(tmp_path, text, expected):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    proc = kiosk("--config", str(bad), "people", "list")
    assert proc.returncode == 2 and expected in proc.stderr and "Traceback" not in proc.stderr


def test_missing_config_file(tmp_path):
    proc = kiosk("config", "check", str(tmp_path / "nope.yaml"))
    assert proc.returncode == 2 and "config file not found" in proc.stderr


def test_environment_overrides_the_file(config):
    env_proc = kiosk("config", "show", config=config, env={"KIOSK__ATTENDANCE__COOLDOWN_S": "42"})
    assert "cooldown_s: 42.0" in env_proc.stdout


def test_enrol_list_show_report_remove(config, tmp_path, any_kiosk):
    kiosk = any_kiosk
    # every day a work day, so that today's report lists her as absent whatever day the test runs
    config.write_text(config.read_text().replace("site:\n", "site:\n  work_days: [mon, tue, wed, thu, fri, sat, sun]\n"))
    photos = sorted((PEOPLE / "Venus_Williams").glob("*.jpg"))
    proc = kiosk("enroll", "--name", "Venus Williams", "--employee-id", "E2", "--consent",
                 *map(str, photos[:3]), config=config)
    assert proc.returncode == 0, proc.stderr
    assert "enrolled with 3 photo(s)" in proc.stdout

    # A second, different employee id with the same face is refused and nothing changes.
    more = sorted((TEST_DATA / "faces" / "extra" / "Venus_Williams").glob("*.jpg"))[:2]  # 3 photos: min_photos
    dup = kiosk("enroll", "--name", "V. Williams", "--employee-id", "E9", str(photos[3]), *map(str, more),
                config=config)
    assert dup.returncode == 1 and "Venus Williams (E2)" in dup.stderr and "Traceback" not in dup.stderr

    listed = json.loads(kiosk("people", "list", "--json", config=config).stdout)
    assert listed == [{"employee_id": "E2", "name": "Venus Williams", "templates": 3,
                       "expression_consent": True, "active": True}]
    shown = kiosk("people", "show", "E2", "--export", str(tmp_path / "e2.json"), config=config)
    assert "face templates: 3" in shown.stdout
    exported = json.loads((tmp_path / "e2.json").read_text())
    assert exported["person"]["employee_id"] == "E2"

    report = kiosk("report", "daily", "--date", "today", "--format", "csv", config=config)
    rows = list(csv.DictReader(io.StringIO(report.stdout)))
    assert [r["employee_id"] for r in rows] == ["E2"] and rows[0]["status"] == "absent"

    blob = sqlite3.connect(tmp_path / "k.db").execute("SELECT embedding FROM face_templates LIMIT 1").fetchone()[0]
    removed = kiosk("people", "remove", "E2", "--yes", config=config)
    assert removed.returncode == 0 and "erased 3 template(s)" in removed.stdout
    con = sqlite3.connect(tmp_path / "k.db")
    assert con.execute("SELECT count(*) FROM face_templates").fetchone()[0] == 0
    con.close()
    raw = (tmp_path / "k.db").read_bytes()
    wal = tmp_path / "k.db-wal"
    assert blob not in raw and (not wal.exists() or blob not in wal.read_bytes())
    assert "nobody enrolled" in kiosk("people", "list", config=config).stdout


def test_unknown_person_and_bad_paths_are_one_message(config):
    for args in (["people", "show", "E404"], ["people", "remove", "E404", "--yes"],
                 ["enroll", "--name", "X", "--employee-id", "E1", "/no/such/photo.jpg"],
                 ["report", "daily", "--date", "31.02.2026"],
                 ["evaluate", "faces", "--data", "/no/such/dir"]):
        proc = kiosk(*args, config=config)
        assert proc.returncode == 1, (args, proc.stderr)
        assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr


def test_not_a_database_is_refused_and_left_alone(tmp_path):
    notes = tmp_path / "notes.db"
    notes.write_text("my precious notes")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"database:\n  path: {notes}\n")
    proc = kiosk("people", "list", config=cfg)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert notes.read_text() == "my precious notes"


def test_evaluate_faces_prints_json_last(config, tmp_path):
    # Extra strangers: another folder (here the two committed strangers under other names).
    extra = tmp_path / "extra"
    extra.mkdir()
    for photo in sorted((TEST_DATA / "faces" / "strangers").glob("*.jpg")):
        (extra / f"extra_{photo.name}").write_bytes(photo.read_bytes())
    proc = kiosk("evaluate", "faces", "--data", str(TEST_DATA / "faces"), "--strangers", str(extra),
                 config=config)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(result) == {"people", "templates", "probes", "strangers", "identified", "wrong_person",
                           "missed", "stranger_accepted", "no_face", "counts", "ci95"}
    assert result["people"] == 4 and result["strangers"] == 4
    assert result["wrong_person"] == 0 and result["stranger_accepted"] == 0
    # Wilson 95% intervals: 0 of 4 strangers is "below 49%", not "0%".
    low, high = result["ci95"]["stranger_accepted"]
    assert low == 0.0 and high == pytest.approx(0.4899, abs=1e-3)
    assert set(result["ci95"]) == {"stranger_accepted", "wrong_person", "missed"}
    missing = kiosk("evaluate", "faces", "--data", str(TEST_DATA / "faces"), "--strangers",
                    str(tmp_path / "nowhere"), config=config)
    assert missing.returncode == 1 and "nowhere" in missing.stderr and "Traceback" not in missing.stderr


def test_evaluate_expressions_on_fer_sample(config):
    proc = kiosk("evaluate", "expressions", "--data", str(TEST_DATA / "fer_sample" / "test"), "--faces-cropped",
                 config=config)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["n"] == 21 and 0 <= result["accuracy"] <= 1 and set(result["recall"]) == {
        "angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"}


def test_users_add_rejects_short_password(config):
    proc = kiosk("users", "add", "alice", "--role", "admin", "--password-stdin", config=config, stdin="short\n")
    assert proc.returncode == 1 and "at least 10" in proc.stderr
    ok = kiosk("users", "add", "alice", "--role", "admin", "--password-stdin", config=config,
               stdin="correct horse battery\n")
    assert ok.returncode == 0 and "admin account created" in ok.stdout


def test_run_without_a_camera_configured_stops_before_touching_anything(tmp_path):
    proc = kiosk("run", cwd=tmp_path)
    assert proc.returncode == 1
    assert "camera.options: path: required for camera type replay" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []  # no database, no status file


def test_events_add_list_remove_by_hand(config, tmp_path):
    """A missed check-out added and a wrong check-in removed from the command line, with mistakes."""
    from kiosk import store

    with store.open_database(tmp_path / "k.db") as db:
        ann = store.add_person(db, "E1", "Ann")
        wrong = store.record_event(db, ann.id, datetime(2026, 6, 15, 4, 0, tzinfo=UTC), "in", "door-1")
    added = kiosk("events", "add", "E1", "--kind", "out", "--at", "2026-06-15 17:30", "--note", "forgot",
                  config=config)
    assert added.returncode == 0, added.stderr
    assert "check-out at 2026-06-15 17:30 added" in added.stdout
    listed = kiosk("events", "list", "E1", "--date", "2026-06-15", config=config)
    assert f"{wrong.id:>8}  2026-06-15 06:00  in   camera door-1" in listed.stdout
    assert "out  by hand (cli: forgot)" in listed.stdout
    report = kiosk("report", "daily", "--date", "2026-06-15", "--format", "csv", config=config)
    row = next(csv.DictReader(io.StringIO(report.stdout)))
    assert (row["hours"], row["corrected"]) == ("11.50", "yes")
    removed = kiosk("events", "remove", str(wrong.id), "--reason", "not Ann", config=config)
    assert removed.returncode == 0 and "check-in at 2026-06-15 06:00" in removed.stdout
    bad = kiosk("events", "add", "E1", "--kind", "in", "--at", "15.06.2026 9:00", "--note", "x", config=config)
    assert bad.returncode == 1 and 'use "YYYY-MM-DD HH:MM"' in bad.stderr and "Traceback" not in bad.stderr
    again = kiosk("events", "remove", str(wrong.id), "--reason", "x", config=config)
    assert again.returncode == 1 and f"no attendance event {wrong.id}" in again.stderr
    renamed = kiosk("people", "rename", "E1", "Ann Other", config=config)
    assert renamed.returncode == 0 and "renamed from 'Ann' to 'Ann Other'" in renamed.stdout
    nobody = kiosk("events", "list", "E404", config=config)
    assert nobody.returncode == 1 and "Traceback" not in nobody.stderr


def test_leave_add_list_remove_and_reports(config, tmp_path):
    """A week's holiday recorded from the command line shows as leave, not absence; mistakes change nothing."""
    from kiosk import store

    with store.open_database(tmp_path / "k.db") as db:
        store.add_person(db, "E1", "Ann", now=datetime(2026, 6, 1, tzinfo=UTC))
    added = kiosk("leave", "add", "E1", "--from", "2026-06-15", "--to", "2026-06-21", config=config)
    assert added.returncode == 0, added.stderr
    assert "Ann (E1): holiday leave 2026-06-15 to 2026-06-21, 5 work day(s) (leave 1)" in added.stdout
    for args, message in [
        (("--from", "2026-06-19", "--kind", "sick"), "already has holiday leave 2026-06-15 to 2026-06-21 (leave 1)"),
        (("--from", "2026-06-30", "--to", "2026-06-29"), "leave ends (2026-06-29) before it starts"),
        (("--from", "19.06.2026"), "not a date: '19.06.2026'"),
    ]:
        bad = kiosk("leave", "add", "E1", *args, config=config)
        assert bad.returncode == 1 and message in bad.stderr and "Traceback" not in bad.stderr
    assert kiosk("leave", "add", "E1", "--from", "2026-06-30", "--kind", "party", config=config).returncode == 2
    listed = kiosk("leave", "list", config=config)
    assert listed.stdout.split() == ["1", "E1", "Ann", "holiday", "2026-06-15", "to", "2026-06-21"]
    week = kiosk("report", "range", "--from", "2026-06-15", "--to", "2026-06-21", "--format", "json", config=config)
    totals = json.loads(week.stdout)["totals"]
    assert [(t["days_absent"], t["days_on_leave"]) for t in totals] == [(0, 5)]
    day = kiosk("report", "daily", "--date", "2026-06-17", "--format", "csv", config=config)
    row = next(csv.DictReader(io.StringIO(day.stdout)))
    assert (row["status"], row["leave"]) == ("leave", "holiday")
    removed = kiosk("leave", "remove", "1", config=config)
    assert removed.returncode == 0 and "leave 1 removed: holiday, 2026-06-15 to 2026-06-21" in removed.stdout
    assert kiosk("leave", "list", "E1", config=config).stdout.strip() == "no leave recorded for E1"
    again = kiosk("leave", "remove", "1", config=config)
    assert again.returncode == 1 and "no leave with id 1" in again.stderr


def test_leave_import_is_all_or_nothing(config, tmp_path):
    """An HR export with a bad line records nothing and names every bad line; the fixed file records all."""
    from kiosk import store

    with store.open_database(tmp_path / "k.db") as db:
        store.add_person(db, "E1", "Ann", now=datetime(2026, 6, 1, tzinfo=UTC))
        store.add_person(db, "E2", "Bob", now=datetime(2026, 6, 1, tzinfo=UTC))
    bad = tmp_path / "bad.csv"
    bad.write_text("employee_id,first_day,last_day,kind\nE1,2026-07-06,2026-07-10,holiday\n"
                   "E3,2026-07-06,,sick\nE2,6.7.2026,,\n")
    proc = kiosk("leave", "import", str(bad), config=config)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [f"error: nothing recorded: 2 line(s) of {bad} are wrong",
                                        "line 3: no person with employee id 'E3'",
                                        "line 4: first_day '6.7.2026' is not a date (use YYYY-MM-DD)"]
    assert kiosk("leave", "list", config=config).stdout.strip() == "no leave recorded"
    good = tmp_path / "good.csv"  # from a spreadsheet: BOM, CRLF, columns in another order, an extra one
    good.write_bytes("\ufeffkind,employee_id,first_day,last_day,approved_by\r\n,E1,2026-07-06,2026-07-10,HR\r\n"
                     "sick,E2,2026-07-06,,HR\r\n".encode())
    proc = kiosk("leave", "import", str(good), config=config)
    assert proc.returncode == 0 and "recorded 2 leave entries" in proc.stdout, proc.stderr
    assert [line.split()[1:4] for line in kiosk("leave", "list", config=config).stdout.splitlines()] == [
        ["E1", "Ann", "holiday"], ["E2", "Bob", "sick"]]
    again = kiosk("leave", "import", str(good), config=config)
    assert again.returncode == 1 and "line 2: Ann already has holiday leave" in again.stderr
    missing = kiosk("leave", "import", str(tmp_path / "nope.csv"), config=config)
    assert missing.returncode == 1 and "no such file" in missing.stderr


def test_train_distill_weight_without_a_teacher_is_a_usage_error(tmp_path):
    """A usage error: answered before TensorFlow is imported (it took 15 s), so no train extra is needed."""
    out = tmp_path / "out" / "m.tflite"
    fer = str(TEST_DATA / "fer_sample" / "train")
    proc = kiosk("train", "expressions", "--data", fer, "--out", str(out), "--distill-weight", "0.3")
    assert proc.returncode == 2 and "--distill-weight needs --distill-from" in proc.stderr
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.train
def test_train_refuses_a_teacher_that_is_no_model(tmp_path):
    pytest.importorskip("tensorflow", reason="the train extra is not installed (pip install -e '.[train]')")
    out = tmp_path / "out" / "m.tflite"
    fer = str(TEST_DATA / "fer_sample" / "train")
    not_a_model = tmp_path / "teacher.tflite"
    not_a_model.write_text("not a model")
    proc = kiosk("train", "expressions", "--data", fer, "--out", str(out), "--distill-from", str(not_a_model))
    assert proc.returncode == 1 and "not a TFLite model" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()


# --- the real program: entry points, and what --help and usage errors import ---------------------


def test_entry_points_start_the_command():
    """`python -m kiosk.cli` and the installed `kiosk` script (pyproject: kiosk.cli:main) both run."""
    module = run_cli_process("--help")
    assert module.returncode == 0 and "Usage: python -m kiosk.cli" in module.stdout, module.stderr
    script = shutil.which("kiosk", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("the kiosk script is not installed next to this Python (pip install -e .)")
    proc = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("kiosk, version "), proc.stderr


def test_help_and_usage_errors_import_no_heavy_library():
    """Every --help page and a usage error load neither TensorFlow, torch, dlib, OpenCV, SQLAlchemy
    nor Flask: `kiosk --help` stays a fraction of a second on the Pi."""
    script = f"""
import sys
from click.testing import CliRunner
from kiosk.cli import main

runner = CliRunner()

def pages(group, path):
    yield path
    for name, command in getattr(group, "commands", {{}}).items():
        if name != "embedder":  # passes --help on to the converter's own parser
            yield from pages(command, path + [name])

for path in pages(main, []):
    assert runner.invoke(main, path + ["--help"]).exit_code == 0, path
for usage_error in (["train", "expressions", "--data", "d", "--out", "o", "--distill-weight", "0.3"],
                    ["enroll", "--name", "A", "--employee-id", "E1"],
                    ["leave", "add", "E1", "--from", "today", "--kind", "party"]):
    assert runner.invoke(main, usage_error).exit_code == 2, usage_error
print(" ".join(m for m in {HEAVY_MODULES!r} if m in sys.modules))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == []


def test_in_process_runs_show_an_unexpected_error_as_the_traceback_a_process_prints(config, monkeypatch):
    """cli_helpers.run_cli: `"Traceback" not in stderr` means what it means for a real process."""
    from kiosk import store

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("a bug, not a user's mistake")

    monkeypatch.setattr(store, "list_people", broken)
    proc = run_cli("people", "list", config=config)
    assert proc.returncode == 1
    assert proc.stderr.startswith("Traceback (most recent call last):")
    assert proc.stderr.rstrip().endswith("RuntimeError: a bug, not a user's mistake")
