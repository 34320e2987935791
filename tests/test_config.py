"""The settings package: every section strict, the YAML loader's messages, names importable from kiosk.config."""

from __future__ import annotations

import re
import typing
from datetime import date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import BaseModel, ValidationError

import kiosk.config as config
from kiosk.config import ConfigError, Section, Settings, load_settings


def _sections() -> list[type[BaseModel]]:
    return [value for value in vars(config).values()
            if isinstance(value, type) and issubclass(value, BaseModel) and value is not Section]


def test_every_section_refuses_unknown_keys() -> None:
    sections = _sections()
    assert Settings in sections and len(sections) >= 12
    for section in sections:
        assert issubclass(section, Section), section
        with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
            section.model_validate({"no_such_key": 1})


def test_every_section_is_reachable_from_settings() -> None:
    """Each section model is used by Settings (directly or nested), so none is left behind by a split."""
    reached: set[type[BaseModel]] = set()
    todo: list[type[BaseModel]] = [Settings]
    while todo:
        model = todo.pop()
        reached.add(model)
        for field in model.model_fields.values():
            kinds = [field.annotation]
            while kinds:  # the annotation and its arguments (dict[str, SiteOverride])
                kind = kinds.pop()
                kinds.extend(typing.get_args(kind))
                if isinstance(kind, type) and issubclass(kind, BaseModel) and kind not in reached:
                    todo.append(kind)
    assert set(_sections()) == reached


def test_a_key_given_twice_names_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "kiosk.yaml"
    path.write_text("site:\n  name: A\n  timezone: UTC\n  name: B\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={})
    assert str(err.value) == f"{path}, lines 2 and 4: the key 'name' is given twice (keep one)"


def test_environment_overrides_keep_the_file_lines_in_messages(tmp_path: Path) -> None:
    path = tmp_path / "kiosk.yaml"
    path.write_text("site:\n  name: A\nweb:\n  port: 99999\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={"KIOSK__SITE__NAME": "B"})
    assert str(err.value).startswith(f"{path}, line 4: web.port: ")
    settings = load_settings(path, environ={"KIOSK__WEB__PORT": "8090", "KIOSK__SITE__WORK_DAYS": "[mon]"})
    assert (settings.site.name, settings.web.port, settings.site.work_days) == ("A", 8090, ["mon"])


def test_defaults_work_monday_to_friday() -> None:
    site = Settings().site
    assert site.work_days == ["mon", "tue", "wed", "thu", "fri"]
    assert site.work_days is not Settings().site.work_days  # a fresh list each time


def test_sites_take_their_own_rules_and_site_for_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "kiosk.yaml"
    path.write_text("role: central\nsite:\n  timezone: Europe/Berlin\n  holidays: ['2026-10-03']\n"
                    "sites:\n  london:\n    timezone: Europe/London\n    workday_start: '08:30'\n"
                    "    holidays: ['2026-12-28']\n  berlin: {}\n")
    settings = load_settings(path, environ={})
    london, berlin, none = settings.rules_of("london"), settings.rules_of("berlin"), settings.rules_of(None)
    assert (london.tz, london.workday_start, london.late_grace_minutes) == (ZoneInfo("Europe/London"), time(8, 30), 5)
    assert (berlin.tz, berlin.workday_start) == (ZoneInfo("Europe/Berlin"), time(9, 0))
    assert settings.rules_of("paris") == none == berlin  # a site not listed: site: whole
    assert not london.is_work_day(date(2026, 12, 28)) and london.is_work_day(date(2026, 10, 5))
    assert not berlin.is_work_day(date(2026, 10, 3)) and not london.is_work_day(date(2026, 10, 3))  # Saturday
    assert london.is_work_day(date(2026, 10, 2)) and berlin.is_work_day(date(2026, 12, 28))
    late_evening = datetime(2026, 3, 2, 23, 30, tzinfo=ZoneInfo("UTC"))
    assert (london.local_day(late_evening), berlin.local_day(late_evening)) == (date(2026, 3, 2), date(2026, 3, 3))


@pytest.mark.parametrize(("text", "message"), [
    ("sites:\n  london: {timezone: Europe/London}\n", "top level): Value error, sites: only a central server"),
    ("role: central\nsites:\n  london: {timezone: Europe/Lndon}\n",
     "line 3: sites.london.timezone: Value error, unknown time zone 'Europe/Lndon'"),
    ("role: central\nsites:\n  london: {opens: '08:00'}\n", "line 3: sites.london.opens: unknown key"),
    ("role: central\nsites:\n  ' london': {}\n", "a site name is 1 to 100 characters"),
])
def test_bad_sites_are_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "kiosk.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(path, environ={})
