"""Load a .tflite model with whichever TFLite runtime is installed (ai-edge-litert, else tflite-runtime)."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from kiosk.errors import ModelError

logger = logging.getLogger(__name__)

RUNTIMES = ("ai_edge_litert", "tflite_runtime")


def interpreter_class(prefer: str | None = None) -> tuple[type, str]:
    """(Interpreter class, runtime name) of the first importable runtime; prefer one by name."""
    order = [prefer] + [r for r in RUNTIMES if r != prefer] if prefer else list(RUNTIMES)
    for name in order:
        try:
            if name == "ai_edge_litert":
                from ai_edge_litert.interpreter import Interpreter
            elif name == "tflite_runtime":
                from tflite_runtime.interpreter import Interpreter
            else:
                raise ModelError(f"unknown TFLite runtime {name!r}; use one of {RUNTIMES}")
        except ImportError:
            continue
        return Interpreter, name
    raise ModelError("no TFLite runtime installed: pip install ai-edge-litert (or tflite-runtime)")


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_checksum(path: Path, setting: str = "expression.verify_checksum") -> None:
    """Compare path against the hex digest in path + '.sha256'; raise ModelError on mismatch.

    setting: the config key that turns the check off, named in the error message.
    """
    path = Path(path)
    sums = path.with_name(path.name + ".sha256")
    if not sums.exists():
        raise ModelError(f"checksum file missing: {sums} (or set {setting}: false)")
    expected = sums.read_text().split()[0].strip().lower()
    actual = sha256_of(path)
    if actual != expected:
        raise ModelError(f"model file {path} is corrupted or was replaced: SHA-256 {actual[:12]}... "
                         f"does not match {sums.name} ({expected[:12]}...)")


def load_interpreter(path: Path | str, *, check: bool = True, threads: int = 1,
                     prefer: str | None = None) -> tuple[Any, str]:
    """(allocated Interpreter, runtime name) for a .tflite file; ModelError when missing or broken."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    if check:
        verify_checksum(path)
    cls, name = interpreter_class(prefer)
    try:
        interpreter = cls(model_path=str(path), num_threads=threads)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"cannot load model {path}: not a valid TFLite model ({exc})") from None
    logger.info("loaded %s with %s", path.name, name)
    return interpreter, name
