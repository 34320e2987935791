"""Run the `kiosk` command in tests: in this process with click's CliRunner (milliseconds), or as a
real `python -m kiosk.cli` process (seconds: imports, the entry point, process-wide locks and ports).

Both return a CliResult with returncode, stdout and stderr like subprocess.CompletedProcess, so a
test switches between them without changing its assertions:

    from cli_helpers import run_cli          # was: subprocess.run([sys.executable, "-m", "kiosk.cli", ...])
    proc = run_cli("people", "list", config=config)
    assert proc.returncode == 0 and "nobody enrolled" in proc.stdout

Both drop the KIOSK_* variables of the test run (a developer's own KIOSK_CONFIG never leaks in);
env= adds variables on top. In-process, an exception the command does not turn into one message
is written to stderr as the traceback Python would print, with exit status 1, so
`"Traceback" not in proc.stderr` checks the same thing as for a real process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import traceback
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from click.testing import CliRunner


@dataclass(frozen=True)
class CliResult:
    """What one `kiosk` run left: its arguments, exit status, and standard output and error as text."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str


class KioskRunner(Protocol):
    """run_cli or run_cli_process: `kiosk [--config CONFIG] ARGS` -> CliResult."""

    def __call__(self, *args: str | Path, config: Path | None = None, stdin: str | None = None,
                 env: Mapping[str, str] | None = None, cwd: Path | None = None) -> CliResult: ...


def _argv(args: tuple[str | Path, ...], config: Path | None) -> list[str]:
    return (["--config", str(config)] if config is not None else []) + [str(a) for a in args]


@contextlib.contextmanager
def _logger_levels_kept() -> Iterator[None]:
    """Put back the levels the command sets (`run` and `train` raise kiosk's loggers to INFO)."""
    loggers = [logging.getLogger()] + [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)
                                       if name == "kiosk" or name.startswith("kiosk.")]
    levels = [lg.level for lg in loggers]
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def run_cli(*args: str | Path, config: Path | None = None, stdin: str | None = None,
            env: Mapping[str, str] | None = None, cwd: Path | None = None) -> CliResult:
    """`kiosk [--config CONFIG] ARGS` in this process (stdin: text on standard input; cwd: the working
    folder during the run)."""
    from kiosk.cli import main

    argv = _argv(args, config)
    changes: dict[str, str | None] = {k: None for k in os.environ if k.startswith("KIOSK")}
    changes.update(env or {})
    runner = CliRunner(env=changes)
    with contextlib.chdir(cwd) if cwd is not None else contextlib.nullcontext(), _logger_levels_kept():
        result = runner.invoke(main, argv, input=stdin, prog_name="kiosk")
    stderr, code = result.stderr, result.exit_code
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))  # what the interpreter prints
        code = 1
    return CliResult(argv, code, result.stdout, stderr)


def run_cli_process(*args: str | Path, config: Path | None = None, stdin: str | None = None,
                    env: Mapping[str, str] | None = None, cwd: Path | None = None,
                    timeout: float = 300) -> CliResult:
    """`python -m kiosk.cli [--config CONFIG] ARGS` as a real process (a smoke test of the whole
    program; or where the command needs a process of its own: the door service, the web server)."""
    argv = _argv(args, config)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK")} | dict(env or {})
    proc = subprocess.run([sys.executable, "-m", "kiosk.cli", *argv], capture_output=True, text=True,
                          timeout=timeout, input=stdin, env=environ, cwd=cwd)
    return CliResult(argv, proc.returncode, proc.stdout, proc.stderr)
