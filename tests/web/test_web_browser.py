"""End to end in a real headless Chromium (Selenium + Debian's chromedriver) against the app
served by waitress on 127.0.0.1: sign in, enrol from real photos, replayed check-ins on the
board, CSV download, consent on and off, deletion with no biometric bytes left behind.

Screenshots of the main pages go to $KIOSK_SCREENSHOTS when set, else to a pytest temporary
folder, <basetemp>/screenshots0/ (e.g. /tmp/pytest-of-$USER/pytest-N/screenshots0/; pytest keeps
only its last three runs, so set KIOSK_SCREENSHOTS or --basetemp to keep them); never into the
source tree.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from web_helpers import ADMIN, MANAGER, TZ, make_settings

from kiosk.attendance import Attendance, StoreEventLog
from kiosk.clock import ManualClock
from kiosk.store import add_person, get_person_by_employee_id, open_from_settings
from kiosk.web import create_app, create_user

ROOT = Path(__file__).resolve().parents[2]
PEOPLE = ROOT / "tests" / "data" / "faces" / "people"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = "/usr/bin/chromedriver"

pytestmark = pytest.mark.slow

try:
    from selenium import webdriver
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError:  # pragma: no cover
    webdriver = None


def _skip_reason() -> str | None:
    if webdriver is None:
        return "selenium is not installed (pip install selenium==4.51.0)"
    if CHROMIUM is None or not Path(CHROMEDRIVER).exists():
        return ("needs Debian's chromium and chromium-driver "
                "(apt-get install -y chromium chromium-driver)")
    if not (PEOPLE / "Hu_Jintao").is_dir():
        return f"test photos missing under {PEOPLE}"
    return None


@pytest.fixture
def browser(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 f"--user-data-dir={tmp_path / 'chrome-profile'}", "--window-size=1280,900"):
        opts.add_argument(flag)
    opts.add_experimental_option("prefs", {
        "download.default_directory": str(downloads), "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior",
                           {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads  # type: ignore[attr-defined]
    # beside tmp_path, not in it: the test searches tmp_path for left-over biometric bytes
    driver.shots = Path(os.environ.get("KIOSK_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))  # type: ignore[attr-defined]
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


class Server:
    """The app served by waitress in a thread on 127.0.0.1 and a free port."""

    def __init__(self, app: object) -> None:
        from waitress.server import create_server

        self.server = create_server(app, host="127.0.0.1", port=0, threads=4)
        self.url = f"http://127.0.0.1:{self.server.effective_port}"
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.close()
        self.thread.join(5)


def shot(driver: object, name: str, width: int = 1280) -> Path:
    """Full-page PNG screenshot into the browser's screenshot folder (see the module docstring)."""
    driver.shots.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script(
        "return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)")
    driver.set_window_size(width, min(max(int(height) + 140, 600), 6000))
    path = driver.shots / f"{name}.png"
    driver.save_screenshot(str(path))
    driver.set_window_size(1280, 900)
    return path


def wait_for(driver: object, css: str, timeout: float = 60) -> object:
    return WebDriverWait(driver, timeout).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, css)))


def submit(driver: object, element_id: str) -> None:
    """Click a button that loads a new page, and wait until the old page is gone (no stale reads)."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

    for attempt in range(3):  # the previous navigation may still be settling (seen once in CI)
        WebDriverWait(driver, 60).until(
            lambda d: d.execute_script("return document.readyState") == "complete")
        try:
            old = driver.find_element(By.TAG_NAME, "html")
            driver.find_element(By.ID, element_id).click()
            break
        except (StaleElementReferenceException, WebDriverException):
            if attempt == 2:
                raise
            time.sleep(0.5)
    WebDriverWait(driver, 60).until(lambda d: _gone(old))
    WebDriverWait(driver, 60).until(
        lambda d: d.execute_script("return document.readyState") == "complete")


def _gone(element: object) -> bool:
    """True once ``element``'s page has been replaced.

    Chrome reports a node of the page being torn down either as stale or, mid-navigation, as
    "Node with given id does not belong to the document" (a plain WebDriverException, seen in CI);
    both mean the old page is gone.
    """
    from selenium.common.exceptions import WebDriverException

    try:
        element.is_enabled()
    except WebDriverException:
        return True
    return False


def sign_in(driver: object, base: str, username: str, password: str) -> None:
    driver.get(base + "/login")
    driver.find_element(By.ID, "username").send_keys(username)
    driver.find_element(By.ID, "password").send_keys(password)
    submit(driver, "login-button")
    wait_for(driver, "#count-in")


def wait_download(folder: Path, name: str, timeout: float = 30) -> Path:
    end = time.time() + timeout
    while time.time() < end:
        path = folder / name
        if path.exists() and not list(folder.glob("*.crdownload")):
            return path
        time.sleep(0.2)
    raise AssertionError(f"{name} not downloaded; folder holds {list(folder.iterdir())}")


def file_bytes_everywhere(root: Path, skip: set[Path]) -> list[tuple[Path, bytes]]:
    out = []
    for path in root.rglob("*"):
        if path.is_file() and not any(s in path.parents for s in skip):
            out.append((path, path.read_bytes()))
    return out


def test_browser_end_to_end(browser: object, tmp_path: Path) -> None:
    driver = browser
    settings = make_settings(tmp_path, min_group_size=1)
    settings.retention.keep_enrolment_images = True
    settings.site.work_days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]  # today is a work day, any day
    now = datetime.now(UTC)
    clock = ManualClock(now)
    day = now.astimezone(TZ).date()
    at = lambda hh, mm: datetime(day.year, day.month, day.day, hh, mm, tzinfo=TZ)  # noqa: E731

    kiosk_db = open_from_settings(settings)  # the kiosk service's own connection
    create_user(kiosk_db, *ADMIN, "admin")
    create_user(kiosk_db, *MANAGER, "manager")
    absent = add_person(kiosk_db, "E-200", "Absent Person")
    late = add_person(kiosk_db, "E-300", "Late Person")
    status_file = Path(settings.database.path).parent / "status.json"
    status_file.write_text(json.dumps({
        "updated_at": now.isoformat(), "camera": "ok", "last_frame_at": now.isoformat(),
        "counts": {"frames": 1234, "faces": 56, "recognised": 7, "unknown": 1}}))

    app = create_app(settings, clock=clock, secret_key="s" * 64)
    server = Server(app)
    base = server.url
    try:
        # --- sign in --------------------------------------------------------------------------
        driver.get(base + "/")
        assert "/login" in driver.current_url
        shot(driver, "01-login")
        sign_in(driver, base, *ADMIN)

        # --- enrol from real photos -----------------------------------------------------------
        driver.get(base + "/admin/enrol")
        driver.find_element(By.ID, "name").send_keys("Hu Jintao")
        driver.find_element(By.ID, "employee_id").send_keys("E-100")
        photos = sorted((PEOPLE / "Hu_Jintao").glob("*.jpg"))
        driver.find_element(By.ID, "photos").send_keys("\n".join(str(p) for p in photos))
        submit(driver, "enrol-submit")
        table = wait_for(driver, "#table-verdicts")
        rows = table.find_elements(By.CSS_SELECTOR, "tbody tr")
        assert len(rows) == len(photos)
        assert sum("face found" in r.text for r in rows) >= 3, table.text
        shot(driver, "02-enrol-result")
        person = get_person_by_employee_id(kiosk_db, "E-100")
        assert person.template_count >= 3 and not person.expression_consent

        # --- or ask the kiosk camera to take the photos; then think better of it -------------
        driver.get(base + "/admin/enrol")
        driver.find_element(By.ID, "name").send_keys("Ray Romano")
        driver.find_element(By.ID, "employee_id").send_keys("E-400")
        submit(driver, "kiosk-submit")  # no photo files: the kiosk takes them
        wait_for(driver, "#capture-status[data-status='waiting']")  # the page reloads itself every 2 s
        assert "0 of 5" in WebDriverWait(driver, 30, ignored_exceptions=(StaleElementReferenceException,)).until(
            lambda d: d.find_element(By.ID, "capture-photos").text)
        shot(driver, "02b-capture-waiting")
        submit(driver, "capture-cancel")
        wait_for(driver, "#capture-status[data-status='cancelled']")

        # --- replayed check-ins (the kiosk's attendance code with a manual clock) -------------
        attendance = Attendance(StoreEventLog(kiosk_db, settings.site.device_id), settings, clock)
        assert attendance.sighting(person.id, at(8, 50), expression_label="happy",
                                   match_distance=0.31, match_score=0.8).kind == "in"
        assert attendance.sighting(late.id, at(9, 20)).kind == "in"
        attendance.unknown_face(at(9, 30))

        driver.get(base + "/")
        assert "Hu Jintao" in driver.find_element(By.ID, "table-in").text
        assert "Late Person" in driver.find_element(By.ID, "table-late").text
        assert "Absent Person" in driver.find_element(By.ID, "table-absent").text
        assert driver.find_element(By.ID, "count-in").text == "2"
        assert driver.find_element(By.ID, "count-late").text == "1"
        shot(driver, "03-board")
        shot(driver, "03b-board-phone", width=390)

        # --- CSV download ---------------------------------------------------------------------
        driver.find_element(By.ID, "day-csv").click()
        csv_path = wait_download(driver.downloads, f"attendance-{day}.csv")
        with csv_path.open(newline="") as fh:
            table_rows = {r["employee_id"]: r for r in csv.DictReader(fh)}
        assert set(table_rows) == {"E-100", "E-200", "E-300"}
        assert table_rows["E-100"]["first_in"].startswith(f"{day}T08:50")
        assert table_rows["E-100"]["late"] == "no" and table_rows["E-100"]["status"] == "open"
        assert table_rows["E-300"]["late"] == "yes" and table_rows["E-300"]["minutes_late"] == "20"
        assert table_rows["E-200"]["status"] == "absent"

        # --- consent: given, expression recorded and shown; withdrawn, gone -------------------
        driver.get(f"{base}/people/{person.id}")
        assert driver.find_elements(By.ID, "expr-none")  # no consent: nothing shown
        submit(driver, "consent-give")
        assert wait_for(driver, "#consent-state").text == "given"
        clock.set(at(12, 30))
        attendance.sighting(person.id, at(12, 30), expression_label="happy",
                            expression_scores={"happy": 0.9, "neutral": 0.1},
                            expression_confidence=0.9)
        driver.get(f"{base}/people/{person.id}")
        assert "happy 1" in driver.find_element(By.ID, "expr-summary").text
        shot(driver, "04-person-consented")
        driver.get(base + "/")
        assert driver.find_element(By.CSS_SELECTOR, "#team-mood svg")
        driver.get(base + "/mood")
        shot(driver, "05-mood")

        driver.get(f"{base}/people/{person.id}")
        submit(driver, "consent-withdraw")
        assert wait_for(driver, "#consent-state").text == "not given"
        assert driver.find_elements(By.ID, "expr-none")
        assert not driver.find_elements(By.ID, "expr-summary")
        driver.get(base + "/")
        assert driver.find_elements(By.ID, "team-hidden")
        assert not driver.find_elements(By.CSS_SELECTOR, "#team-mood svg")

        # --- leave: recorded on the person page, the board counts it apart from absences -------
        driver.get(f"{base}/people/{absent.id}")
        Select(driver.find_element(By.ID, "leave-kind")).select_by_value("sick")
        submit(driver, "leave-add")
        assert "sick" in wait_for(driver, "#table-leave").text
        driver.get(base + "/")
        assert "Absent Person" in driver.find_element(By.ID, "table-leave").text
        assert "Absent Person" not in driver.find_element(By.ID, "table-absent").text
        assert (driver.find_element(By.ID, "count-absent").text, driver.find_element(By.ID, "count-leave").text) == \
            ("0", "1")

        # --- other pages, for the reviewer ----------------------------------------------------
        status_file.write_text(json.dumps({  # the service keeps writing it as the (test) clock moves on
            "updated_at": clock.now().isoformat(), "camera": "ok", "last_frame_at": clock.now().isoformat(),
            "counts": {"frames": 1234, "faces": 56, "recognised": 7, "unknown": 1}}))
        for path, name, marker in (("/range", "06-week", "#table-totals"),
                                   ("/people", "07-people", "#table-people"),
                                   ("/leave", "07b-leave", "#table-leave-all"),
                                   ("/admin/status", "08-status", "#service-state"),
                                   ("/admin/privacy", "09-privacy", "#expression-state"),
                                   ("/admin/audit", "10-audit", "#table-audit")):
            driver.get(base + path)
            wait_for(driver, marker, 30)
            shot(driver, name)
        driver.get(base + "/admin/status")
        assert driver.find_element(By.ID, "service-state").text == "Service running"

        # --- delete: erasure of templates and photos ------------------------------------------
        with sqlite3.connect(settings.database.path) as con:
            templates = [r[0] for r in con.execute(
                "SELECT embedding FROM face_templates WHERE person_id=?", (person.id,))]
            images = [r[0] for r in con.execute(
                "SELECT image FROM enrolment_images WHERE person_id=?", (person.id,))]
        assert len(templates) == person.template_count and len(images) == len(templates)
        driver.get(f"{base}/people/{person.id}")
        driver.find_element(By.ID, "delete").click()
        driver.find_element(By.ID, "confirm").send_keys("E-100")
        submit(driver, "delete-submit")
        wait_for(driver, "#table-people")
        assert "Erased Hu Jintao" in driver.page_source
        assert "Hu Jintao" not in driver.find_element(By.ID, "table-people").text
        shot(driver, "11-after-delete")
    finally:
        server.close()
        app.extensions["kiosk"].db.close()

    with sqlite3.connect(settings.database.path) as con:
        assert con.execute("SELECT count(*) FROM face_templates WHERE person_id=?",
                           (person.id,)).fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM enrolment_images WHERE person_id=?",
                           (person.id,)).fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM attendance_events WHERE person_id=? AND "
                           "(match_distance IS NOT NULL OR expression_label IS NOT NULL)",
                           (person.id,)).fetchone()[0] == 0
    kiosk_db.close()
    # no copy of a template or a photo anywhere under the data folder (db, -wal, key, ...)
    needles = templates + [img[len(img) // 2: len(img) // 2 + 64] for img in images]
    files = file_bytes_everywhere(tmp_path, {driver.downloads, tmp_path / "chrome-profile"})
    assert any(p.name == "kiosk.db" for p, _ in files)
    for path, data in files:
        for needle in needles:
            assert needle not in data, f"biometric bytes left in {path}"


def test_manager_in_browser_sees_no_admin_pages(browser: object, tmp_path: Path) -> None:
    driver = browser
    settings = make_settings(tmp_path)
    db = open_from_settings(settings)
    create_user(db, *MANAGER, "manager")
    app = create_app(settings, db, clock=ManualClock(datetime.now(UTC)), secret_key="m" * 64)
    server = Server(app)
    try:
        sign_in(driver, server.url, *MANAGER)
        nav = driver.find_element(By.CSS_SELECTOR, "header nav").text
        assert "People" in nav and "Enrol" not in nav and "Audit" not in nav
        driver.get(server.url + "/admin/enrol")
        assert "Admins only" in driver.page_source
        shot(driver, "12-manager-refused")
        submit(driver, "logout")
        wait_for(driver, "#login-button")
        driver.get(server.url + "/")
        assert "/login" in driver.current_url
    finally:
        server.close()
        db.close()
