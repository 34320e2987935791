"""All settings: one section per part of the kiosk, plus the values derived from several."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

from kiosk.config.base import Section
from kiosk.config.door import AttendanceSettings, CameraSettings, ScreenSettings, ServiceSettings
from kiosk.config.faces import EnrolmentSettings, ExpressionSettings, RecognitionSettings
from kiosk.config.site import DatabaseSettings, RetentionSettings, SiteSettings
from kiosk.config.web import WebSettings


class Settings(Section):
    """All settings, one section per part of the kiosk."""

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

    @property
    def tz(self) -> ZoneInfo:
        """The site's time zone."""
        return ZoneInfo(self.site.timezone)

    @property
    def status_path(self) -> Path:
        """Where the door service writes its status: service.status_file, or status.json beside the database."""
        if self.service.status_file:
            return Path(self.service.status_file)
        return Path(self.database.path).resolve().parent / "status.json"
