"""`kiosk config`, `kiosk run`, `kiosk serve` and `kiosk demo`: check the settings, then run the door
service, the web app, or a replayed day at the door."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from kiosk.cli.base import PATH, Context, friendly, with_context

logger = logging.getLogger(__name__)


@click.group()
def config() -> None:
    """Check or show the settings."""


@config.command("check")
@click.argument("file", required=False, type=PATH)
@with_context
def config_check(ctx: Context, file: Path | None) -> None:
    """Validate FILE (or --config); exit 2 with the key and line of each problem."""
    from kiosk.config import ConfigError, door_problems, load_settings

    source = file or ctx.config_path or "defaults"
    problems = door_problems(load_settings(file or ctx.config_path))
    if problems:
        raise ConfigError("\n".join(f"{source}: {p}" for p in problems))
    click.echo(f"{source}: ok")


@config.command("show")
@with_context
def config_show(ctx: Context) -> None:
    """Print the effective settings (file + environment + defaults) as YAML."""
    from kiosk.config import settings_as_yaml

    click.echo(settings_as_yaml(ctx.settings), nl=False)


@click.command("run")
@click.option("--stop-after", type=click.IntRange(1), default=None, help="Stop after N frames (testing).")
@with_context
def run(ctx: Context, stop_after: int | None) -> None:
    """The door service: camera -> recognition -> attendance events -> door screen (systemd runs this)."""
    from kiosk.camera.options import parse_options
    from kiosk.service import run_service

    camera = ctx.settings.camera
    parse_options(camera.type, camera.options)  # a camera mistake stops us before anything starts
    logging.getLogger("kiosk").setLevel(min(logging.getLogger().level, logging.INFO))
    sys.exit(run_service(ctx.settings, stop_after=stop_after))


@click.command("serve")
@with_context
def serve(ctx: Context) -> None:
    """Run the manager/admin web app on web.host:web.port until stopped."""
    from kiosk.web import serve as serve_web

    click.echo(f"serving on http://{ctx.settings.web.host}:{ctx.settings.web.port}/ (Ctrl+C stops)", err=True)
    serve_web(ctx.settings)


@click.command("demo")
@click.option("--dir", "folder", type=PATH, default=None,
              help="Empty folder for the demo database and frames (default: a new temporary folder).")
@click.option("--no-expression", is_flag=True, help="Run with expression analysis switched off.")
@friendly
def demo(folder: Path | None, no_expression: bool) -> None:
    """Enrol three people from shipped photos, replay a day at the door, print log and report."""
    import tempfile

    from kiosk.demo import run_demo

    folder = folder or Path(tempfile.mkdtemp(prefix="kiosk-demo-"))
    run_demo(folder, say=click.echo, expression=not no_expression)
