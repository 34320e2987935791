"""Typed settings: one YAML file plus KIOSK__SECTION__KEY environment overrides, validated strictly.

Every number a site would tune lives here with a default and a comment on what it trades.
Unknown or mistyped keys, wrong types and out-of-range values are errors that name the key
and, where the YAML file gave it, the line.

The sections live by part of the kiosk (site, faces, door, web), the top-level Settings in
settings, reading the file in loader and the checks across sections in checks; import any of
their names from here.
"""

from __future__ import annotations

from kiosk.config.base import ConfigError, Section
from kiosk.config.central import CentralSettings
from kiosk.config.checks import door_problems, status_file_problem
from kiosk.config.door import AttendanceSettings, CameraSettings, ScreenSettings, ServiceSettings
from kiosk.config.faces import (
    SHIPPED_EMBEDDER,
    EnrolmentSettings,
    ExpressionSettings,
    FaceQualitySettings,
    RecognitionSettings,
)
from kiosk.config.loader import (
    CONFIG_ENV,
    ENV_PREFIX,
    MAX_CONFIG_BYTES,
    load_settings,
    settings_as_yaml,
)
from kiosk.config.settings import Settings
from kiosk.config.site import WEEKDAYS, DatabaseSettings, RetentionSettings, SiteSettings, Weekday
from kiosk.config.sites import SiteOverride, SiteRules
from kiosk.config.web import WebSettings

__all__ = [
    "CONFIG_ENV",
    "ENV_PREFIX",
    "MAX_CONFIG_BYTES",
    "SHIPPED_EMBEDDER",
    "WEEKDAYS",
    "AttendanceSettings",
    "CameraSettings",
    "CentralSettings",
    "ConfigError",
    "DatabaseSettings",
    "EnrolmentSettings",
    "ExpressionSettings",
    "FaceQualitySettings",
    "RecognitionSettings",
    "RetentionSettings",
    "ScreenSettings",
    "Section",
    "ServiceSettings",
    "Settings",
    "SiteOverride",
    "SiteRules",
    "SiteSettings",
    "WebSettings",
    "Weekday",
    "door_problems",
    "load_settings",
    "settings_as_yaml",
    "status_file_problem",
]
