"""Replacing a small file atomically (the door's status, its sync state, its central token, a compacted
journal): readers see the old content or the new, never half, also after a crash or a power cut."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)


def replace_file(path: Path, content: bytes, *, mode: int = 0o600, sync_folder: bool = False) -> None:
    """Write content to a temp file beside path (no more than 0600 from its creation, exactly `mode`
    before the rename), fsync it and rename it over path; the temp file is removed on any failure.

    sync_folder: fsync the folder too, so the rename itself survives a power cut (OSError if that
    fails). The folder must exist.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if sync_folder:
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
