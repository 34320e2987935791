"""Checks across several settings that the models cannot make alone (what `kiosk run` would refuse)."""

from __future__ import annotations

from pathlib import Path

from kiosk.config.settings import Settings


def status_file_problem(settings: Settings) -> str | None:
    """Why service.status_file must not be used (it names the database, one of SQLite's files beside it, or
    the web secret key: the door rewrites it every few seconds), or None."""
    status = settings.status_path.resolve()
    database = Path(settings.database.path).resolve()
    taken = {database.with_name(database.name + suffix) for suffix in ("", "-wal", "-shm", "-journal")}
    if status in taken or status == settings.secret_key_path.resolve():
        return (f"service.status_file: {settings.status_path} is the database's own file or the web key; "
                "the door would overwrite it every few seconds (leave it unset: status.json beside the database)")
    return None


def door_problems(settings: Settings) -> list[str]:
    """What `kiosk run` would refuse in these settings, one line each (empty: ready to run).

    Defaults are not validated by pydantic, so a file without camera options loads fine but the
    door service cannot start on it; `kiosk config check` reports these too.
    """
    from kiosk.camera.options import options_problem

    problems = []
    problem = options_problem(settings.camera.type, settings.camera.options)
    if problem is not None:
        problems.append(f"camera.options: {problem} (the door service `kiosk run` needs it; "
                        "e.g. camera: {type: opencv, options: {device: 0}})")
    status = status_file_problem(settings)
    if status is not None:
        problems.append(status)
    if settings.role == "door" and not settings.central.url:
        problems.append("central.url: a door (role: door) needs its central server's address, "
                        "e.g. central: {url: https://kiosk.example.org}")
    if settings.database.url is not None:
        problems.append("database.url: the door service keeps its check-ins in an SQLite file (database.path); "
                        "PostgreSQL is for the central server (role: central, `kiosk serve`)")
    if settings.role == "central":
        problems.append("role: central runs the web app for many doors (`kiosk serve`), not a door "
                        "service; use role: door on the Pi at the entrance")
    return problems
