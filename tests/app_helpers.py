"""The web app as the tests run it: on a database opened from settings, with a manual clock, in
Flask's testing mode (shared by tests/web and the central's door API tests)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from flask import Flask
from werkzeug.serving import make_server

from kiosk.clock import ManualClock
from kiosk.config import Settings
from kiosk.store import Database, open_from_settings
from kiosk.web import create_app

SECRET_KEY = "x" * 64


def opened_db(settings: Settings) -> Iterator[Database]:
    """The database of settings, open while the generator runs (`yield from` it in a fixture)."""
    with open_from_settings(settings) as database:
        yield database


def kiosk_app(settings: Settings, db: Database, clock: ManualClock) -> Flask:
    """create_app on db with clock and SECRET_KEY, in testing mode."""
    application = create_app(settings, db, clock=clock, secret_key=SECRET_KEY)
    application.testing = True
    return application


@contextmanager
def served_central(settings: Settings) -> Iterator[tuple[str, Database]]:
    """The web app of settings (a central) on its opened database, served over real HTTP on a free port
    in a thread until the block ends; its URL and database."""
    with open_from_settings(settings) as db:
        app = kiosk_app(settings, db, ManualClock(datetime.now(UTC)))
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_port}", db
        finally:
            server.shutdown()
            thread.join()
