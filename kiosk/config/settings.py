"""All settings: one section per part of the kiosk, plus the values derived from several."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import Field, model_validator

from kiosk.config.base import Section
from kiosk.config.central import CentralSettings
from kiosk.config.door import AttendanceSettings, CameraSettings, ScreenSettings, ServiceSettings
from kiosk.config.faces import EnrolmentSettings, ExpressionSettings, RecognitionSettings
from kiosk.config.site import DatabaseSettings, RetentionSettings, SiteSettings
from kiosk.config.sites import SiteOverride, SiteRules, site_name_problem, site_rules
from kiosk.config.web import WebSettings


class Settings(Section):
    """All settings, one section per part of the kiosk."""

    # standalone: one Pi with its own SQLite file, door service and web app (the default).
    # central: `kiosk serve` for many doors, usually on PostgreSQL (database.url).
    # door: `kiosk run` on a Pi that pushes its events to central.url and pulls the gallery.
    role: Literal["standalone", "central", "door"] = "standalone"
    site: SiteSettings = SiteSettings()
    database: DatabaseSettings = DatabaseSettings()
    recognition: RecognitionSettings = RecognitionSettings()
    expression: ExpressionSettings = ExpressionSettings()
    attendance: AttendanceSettings = AttendanceSettings()
    camera: CameraSettings = CameraSettings()
    retention: RetentionSettings = RetentionSettings()
    enrolment: EnrolmentSettings = EnrolmentSettings()
    web: WebSettings = WebSettings()
    service: ServiceSettings = ServiceSettings()
    screen: ScreenSettings = ScreenSettings()
    central: CentralSettings = CentralSettings()
    # A central's sites with rules of their own, by the site name its doors carry (`kiosk doors add
    # --site NAME`); a key a site leaves out takes site:'s value, and a site not listed uses site: whole.
    sites: dict[str, SiteOverride] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _sites_on_a_central(self) -> Settings:
        if self.sites and self.role != "central":
            raise ValueError("sites: only a central server (role: central) has several sites; a door or a "
                             "standalone kiosk sets its own rules in site:")
        for name in self.sites:
            problem = site_name_problem(name)
            if problem is not None:
                raise ValueError(problem)
        return self

    def rules_of(self, site: str | None) -> SiteRules:
        """The rules a site's days are placed and judged by (None or a site not in sites: site:'s)."""
        return site_rules(self.site, self.sites.get(site) if site is not None else None)

    @property
    def tz(self) -> ZoneInfo:
        """The site's time zone."""
        return ZoneInfo(self.site.timezone)

    @property
    def token_path(self) -> Path:
        """Where a door keeps its central token: central.token_file, or door.token beside the database."""
        return self._file_or_beside_database(self.central.token_file, "door.token")

    @property
    def status_path(self) -> Path:
        """Where the door service writes its status: service.status_file, or status.json beside the database."""
        return self._file_or_beside_database(self.service.status_file, "status.json")

    @property
    def secret_key_path(self) -> Path:
        """The web app's cookie signing key: web.secret_key_file, or web_secret.key beside the database."""
        return self._file_or_beside_database(self.web.secret_key_file, "web_secret.key")

    def _file_or_beside_database(self, configured: Path | None, name: str) -> Path:
        """The configured file when set, else `name` in database.folder (the SQLite file's folder; the
        working directory with database.url)."""
        return Path(configured) if configured else self.database.folder / name
