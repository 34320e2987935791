"""Settings from a YAML file plus KIOSK__SECTION__KEY environment overrides; errors name key and line."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from kiosk.config.base import ConfigError
from kiosk.config.settings import Settings

ENV_PREFIX = "KIOSK__"
CONFIG_ENV = "KIOSK_CONFIG"


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that remembers the line of every mapping key."""


class _DuplicateKey(Exception):
    """A mapping names the same key twice (YAML would silently keep the last one)."""

    def __init__(self, key: str, first_line: int, second_line: int) -> None:
        super().__init__(key)
        self.key, self.first_line, self.second_line = key, first_line, second_line


class _LineDict(dict[Any, Any]):
    """A dict that also knows the YAML line of each key (keys as YAML gave them, usually str)."""

    def __init__(self, data: dict[Any, Any], lines: dict[str, int]) -> None:
        super().__init__(data)
        self.lines = lines


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> _LineDict:
    lines: dict[str, int] = {}
    for key_node, _ in node.value:
        key, line = str(key_node.value), key_node.start_mark.line + 1
        if key in lines:
            raise _DuplicateKey(key, lines[key], line)
        lines[key] = line
    mapping = loader.construct_mapping(node, deep=True)
    return _LineDict(mapping, lines)


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _line_of(data: Any, loc: tuple[Any, ...]) -> int | None:
    line = None
    node = data
    for part in loc:
        if isinstance(node, _LineDict) and str(part) in node.lines:
            line = node.lines[str(part)]
            node = node.get(part)
        else:
            break
    return line


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    """KIOSK__SECTION__KEY=value (value parsed as YAML) -> nested dict."""
    result: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX):].split("__") if p]
        if not parts:
            continue
        node = result
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(raw) if raw != "" else ""
    return result


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _format_errors(exc: ValidationError, data: Any, source: str) -> str:
    messages = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        key = ".".join(str(p) for p in loc) or "(top level)"
        line = _line_of(data, loc)
        where = f"{source}, line {line}" if line else source
        if err["type"] == "extra_forbidden":
            text = "unknown key (check the spelling; see `kiosk config show` for valid keys)"
        else:
            text = err["msg"]
        messages.append(f"{where}: {key}: {text}")
    return "\n".join(messages)


MAX_CONFIG_BYTES = 1_000_000


def _read_config_text(path: Path) -> str:
    """The text of a config file (or pipe); ConfigError for a device or more than MAX_CONFIG_BYTES
    (`--config /dev/zero` would otherwise read until memory runs out)."""
    with path.open("rb") as handle:
        mode = os.fstat(handle.fileno()).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
            raise ConfigError(f"cannot read config file {path}: not a regular file")
        data = handle.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"cannot read config file {path}: over {MAX_CONFIG_BYTES // 1000} kB, is this the right file?")
    return data.decode("utf-8")


def load_settings(path: Path | str | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Read settings from a YAML file (or defaults when None) plus environment overrides.

    Raises ConfigError with a message naming the key and line on any problem.
    """
    environ = dict(os.environ if environ is None else environ)
    if path is None and environ.get(CONFIG_ENV):
        path = environ[CONFIG_ENV]
    data: Any = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        source = str(path)
        try:
            text = _read_config_text(path)
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from None
        try:
            data = yaml.load(text, Loader=_LineLoader) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f", line {mark.line + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise ConfigError(f"{path}{where}: not valid YAML: {problem}") from None
        except _DuplicateKey as dup:
            raise ConfigError(f"{path}, lines {dup.first_line} and {dup.second_line}: the key "
                              f"{dup.key!r} is given twice (keep one)") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections (site:, database:, ...)")
    overrides = _env_overrides(environ)
    merged = _merge(data, overrides) if overrides else data
    if overrides and isinstance(data, _LineDict):
        merged = _LineDict(merged, data.lines)
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, merged, source)) from None




def settings_as_yaml(settings: Settings) -> str:
    """The effective settings as YAML text."""
    return yaml.safe_dump(settings.model_dump(mode="json"), sort_keys=False)
