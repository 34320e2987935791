"""The twin measured against dlib: face chips as dlib cuts them, embedding distances and timings."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from kiosk.gallery import EMBEDDING_SIZE

logger = logging.getLogger(__name__)

CHIP_SIZE = 150
CHIP_PADDING = 0.25


def default_dat_path() -> Path:
    """Where face_recognition_models keeps dlib_face_recognition_resnet_model_v1.dat."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import face_recognition_models

    return Path(face_recognition_models.face_recognition_model_location())


def extract_chips(paths: list[Path], cache: Path | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(chips uint8 (N,150,150,3), dlib descriptors float32 (N,128), names) of the largest face per photo.

    dlib's own chip extraction (5-point landmarks, size 150, padding 0.25), as compute_face_descriptor
    does; photos without a face are skipped. Cached as .npz when cache is given.
    """
    if cache is not None and cache.exists():
        z = np.load(cache, allow_pickle=False)
        return z["chips"], z["desc"], [str(n) for n in z["names"]]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import dlib
        import face_recognition.api as api  # type: ignore[import-untyped]
    from kiosk.vision.faces import load_image

    chips, descs, names = [], [], []
    for path in paths:
        img = load_image(path)
        boxes = api.face_locations(img, 1, "hog") or api.face_locations(img, 0, "hog")
        if not boxes:
            continue
        box = max(boxes, key=lambda b: (b[2] - b[0]) * (b[1] - b[3]))
        shape = api.pose_predictor_5_point(img, api._css_to_rect(box))
        chip = dlib.get_face_chip(img, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
        desc = np.asarray(api.face_encoder.compute_face_descriptor(img, shape, 1), np.float32)
        chips.append(np.asarray(chip, np.uint8))
        descs.append(desc)
        names.append(str(path))
    out = (np.stack(chips), np.stack(descs), names)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(cache, chips=out[0], desc=out[1], names=np.array(names))
    return out


def tflite_embed(path: Path, chips: np.ndarray, threads: int = 1) -> tuple[np.ndarray, float]:
    """(embeddings (N,128) float32, ms per chip) of a .tflite twin on uint8 chips, LiteRT, one invoke each."""
    from kiosk.vision.runtime import load_interpreter

    interp, _ = load_interpreter(path, check=False, threads=threads)
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    embs = np.empty((len(chips), EMBEDDING_SIZE), np.float32)
    # one warm-up invoke
    interp.set_tensor(inp["index"], chips[:1].astype(np.float32))
    interp.invoke()
    start = time.perf_counter()
    for i, chip in enumerate(chips):
        interp.set_tensor(inp["index"], chip[None].astype(np.float32))
        interp.invoke()
        embs[i] = interp.get_tensor(out["index"])[0]
    ms = (time.perf_counter() - start) * 1000.0 / max(len(chips), 1)
    return embs, ms


def paired_timing(models: dict[str, Path], chips: np.ndarray, n: int = 40) -> dict[str, float]:
    """Median ms per face of dlib's compute_face_descriptor and of each .tflite (LiteRT, 1 thread).

    The calls alternate chip by chip (dlib, then each model), so all see the same machine load.
    """
    import warnings

    from kiosk.vision.runtime import load_interpreter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import face_recognition.api as api
    interps = {}
    for name, path in models.items():
        interp, _ = load_interpreter(path, check=False, threads=1)
        interps[name] = (interp, interp.get_input_details()[0]["index"])
    times: dict[str, list[float]] = {"dlib": [], **{name: [] for name in models}}
    for i, chip in enumerate(chips[: n + 2]):
        t = time.perf_counter()
        api.face_encoder.compute_face_descriptor(chip)
        dt = {"dlib": time.perf_counter() - t}
        x = chip[None].astype(np.float32)
        for name, (interp, index) in interps.items():
            t = time.perf_counter()
            interp.set_tensor(index, x)
            interp.invoke()
            dt[name] = time.perf_counter() - t
        if i >= 2:  # two warm-up rounds
            for name, value in dt.items():
                times[name].append(value * 1000.0)
    return {name: float(np.median(v)) for name, v in times.items()}


def distance_stats(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Median, 99th percentile and max Euclidean distance between matching rows of a and b."""
    d = np.linalg.norm(a.astype(np.float64) - b.astype(np.float64), axis=1)
    return {"n": int(len(d)), "median": float(np.median(d)), "p99": float(np.percentile(d, 99)),
            "max": float(d.max())}
