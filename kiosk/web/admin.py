"""The web app's scheduled jobs: the retention purge and the daily off-site copy (run by
`kiosk serve` once a day; the purge also from the privacy page). The admin pages that used to
live here are in kiosk.web.admin_pages.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from kiosk.store import OffsiteCopy, purge_expired, record_copy, write_daily_copy
from kiosk.web.context import WebContext

logger = logging.getLogger(__name__)


def run_purge(c: WebContext, who: str) -> Any:
    """Apply the retention settings now (store.purge_expired); returns its PurgeResult."""
    return purge_expired(c.db, c.clock.now(), c.settings.retention, actor=who)


def run_daily_copy(c: WebContext, who: str) -> OffsiteCopy | None:
    """Write today's copy to database.offsite_dir when set (store.write_daily_copy); None if none was due."""
    d = c.settings.database
    if d.offsite_dir is None:
        return None
    copy = write_daily_copy(Path(d.path), d.offsite_dir, d.offsite_kept, c.today())
    if copy is not None:
        record_copy(c.db, who, copy)
    return copy
