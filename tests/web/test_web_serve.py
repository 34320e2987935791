"""`kiosk serve` path: serve(settings) runs waitress as a real process on a free port."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from net_helpers import free_port

pytestmark = pytest.mark.slow


def test_serve_runs_waitress_and_answers(tmp_path: Path) -> None:
    port = free_port()
    share = tmp_path / "share"  # database.offsite_dir: the daily copy is written at start
    share.mkdir()
    env = {**os.environ, "KIOSK__DATABASE__PATH": str(tmp_path / "kiosk.db"),
           "KIOSK__WEB__PORT": str(port), "KIOSK__WEB__HOST": "127.0.0.1",
           "KIOSK__DATABASE__OFFSITE_DIR": str(share)}
    env.pop("KIOSK_CONFIG", None)
    code = ("import logging; logging.basicConfig(level=logging.INFO);"
            "from kiosk.config import load_settings; from kiosk.web import serve;"
            "serve(load_settings())")
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=2) as r:
                    body = r.read().decode()
                    headers = r.headers
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    out = proc.stdout.read() if proc.stdout else ""
                    pytest.fail(f"server did not answer: {out[-2000:]}")
                time.sleep(0.3)
        assert "Sign in" in body
        assert headers["Server"] == "kiosk"
        assert "HttpOnly" in headers["Set-Cookie"]
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(urllib.request.Request(
                f"http://127.0.0.1:{port}/admin/purge", method="POST", data=b""), timeout=5)
        assert err.value.code == 401
        while not list(share.glob("kiosk-*.db")) and time.time() < deadline:
            time.sleep(0.2)
        copies = list(share.glob("kiosk-*.db"))
        assert len(copies) == 1 and copies[0].read_bytes().startswith(b"SQLite format 3")
    finally:
        proc.terminate()
        proc.wait(10)
    assert (tmp_path / "web_secret.key").exists()
