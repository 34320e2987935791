"""The settings package: every section strict, the YAML loader's messages, names importable from kiosk.config."""

from __future__ import annotations

from pathlib import Path

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
            kind = field.annotation
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
