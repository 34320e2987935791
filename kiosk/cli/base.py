"""The root `kiosk` group and what every subcommand shares: settings loaded on first use, the
database opened from them, and one message with a non-zero exit for every error a user can cause.

Nothing heavy is imported here (no pydantic, SQLAlchemy, dlib or TensorFlow): `kiosk --help` and
usage errors stay fast; commands import what they call inside their bodies.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Concatenate, NoReturn, ParamSpec, TypeVar

import click

from kiosk.errors import KioskError

if TYPE_CHECKING:
    from kiosk.config import Settings
    from kiosk.store import Database, PersonInfo

logger = logging.getLogger(__name__)

EXIT_USER_ERROR = 1
EXIT_CONFIG_ERROR = 2
EXIT_INTERRUPTED = 130

P = ParamSpec("P")
R = TypeVar("R")

PATH = click.Path(path_type=Path)
"""A file or folder named on the command line, as a pathlib.Path."""
FILE_PATH = click.Path(path_type=Path, dir_okay=False)
"""A file (not a folder) named on the command line, as a pathlib.Path."""


def fail(message: str, code: int = EXIT_USER_ERROR) -> NoReturn:
    """Print `error: message` on stderr and exit with code (1: user error, 2: config error)."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def friendly(func: Callable[P, R]) -> Callable[P, R]:
    """Turn the errors a user can cause into one message and a non-zero exit."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from kiosk.config import ConfigError  # pydantic: not on the --help path

        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            fail(str(exc), EXIT_CONFIG_ERROR)
        except KioskError as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            fail("interrupted", EXIT_INTERRUPTED)

    return wrapper


class Context:
    """What subcommands share: the config file path, and settings loaded on first use."""

    def __init__(self, config_path: Path | None) -> None:
        self.config_path = config_path
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        """The settings from the config file, the environment and the defaults (ConfigError if wrong)."""
        if self._settings is None:
            from kiosk.config import load_settings

            self._settings = load_settings(self.config_path)
        return self._settings

    def open_db(self) -> Database:
        """The database named by the settings (a context manager that closes it)."""
        from kiosk import store

        return store.open_from_settings(self.settings)


pass_ctx = click.make_pass_decorator(Context)


def with_context(func: Callable[Concatenate[Context, P], R]) -> Callable[P, R]:
    """A command body that takes the Context first, with friendly() errors: pass_ctx + friendly."""
    return pass_ctx(friendly(func))


def person(database: Database, employee_id: str) -> PersonInfo:
    """The person with this employee id (PersonNotFound, a one-message error, otherwise)."""
    from kiosk import store

    return store.get_person_by_employee_id(database, employee_id)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=PATH, default=None, envvar="KIOSK_CONFIG",
              help="YAML settings file (default: built-in defaults; env KIOSK_CONFIG).")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(package_name="kiosk")
@click.pass_context
def main(click_ctx: click.Context, config_path: Path | None, verbose: int) -> None:
    """Attendance kiosk: face recognition check-in, records in SQLite, reports."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    click_ctx.obj = Context(config_path)
