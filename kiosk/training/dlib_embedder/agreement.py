"""The door's decisions with dlib's embedder against its LiteRT twin on a folder of faces."""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import numpy as np

from kiosk.gallery import EMBEDDING_SIZE
from kiosk.training.dlib_embedder.measure import distance_stats

logger = logging.getLogger(__name__)


def identity_agreement(faces: Path, people: int = 40, strangers: int = 100, enrol: int = 3,
                       model: Path | None = None, cache: Path | None = None) -> dict[str, Any]:
    """The door's decisions with embedder dlib against litert (default settings, mirror TTA on).

    Every len/people-th person of faces/people: the first `enrol` photos are templates, the rest
    probes; plus the first `strangers` strangers. Both analyzers describe the same detected face
    (box found once); returns agreement, each one's rates, and the median ms of describe().
    """
    import warnings

    from kiosk.config import RecognitionSettings
    from kiosk.gallery import Gallery
    from kiosk.vision.faces import DlibFaceAnalyzer, load_image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analyzers = {"dlib": DlibFaceAnalyzer(RecognitionSettings()),
                     "litert": DlibFaceAnalyzer(RecognitionSettings(embedder="litert", embedder_model=model))}
    folders = sorted(p for p in (faces / "people").iterdir() if p.is_dir())
    step = max(1, len(folders) // people)
    chosen = folders[::step][:people]
    photos: list[tuple[str | None, Path]] = [(f.name, p) for f in chosen for p in sorted(f.glob("*.jpg"))]
    photos += [(None, p) for p in sorted((faces / "strangers").glob("*.jpg"))[:strangers]]
    emb: dict[str, list[np.ndarray | None]] = {"dlib": [], "litert": []}
    ms: dict[str, list[float]] = {"dlib": [], "litert": []}
    if cache is not None and cache.exists():
        z = np.load(cache, allow_pickle=False)
        ok = z["ok"]
        for kind in emb:
            emb[kind] = [z[kind][i] if ok[i] else None for i in range(len(ok))]
            ms[kind] = list(z[f"ms_{kind}"])
    else:
        for _, path in photos:
            image = load_image(path)
            boxes = analyzers["dlib"].detect(image)
            box = max(boxes, key=lambda b: (b[2] - b[0]) * (b[1] - b[3])) if boxes else None
            for kind, analyzer in analyzers.items():
                face = None
                if box is not None:
                    t = time.perf_counter()
                    face = analyzer.describe(image, box)
                    ms[kind].append((time.perf_counter() - t) * 1000.0)
                emb[kind].append(face.embedding if face is not None and face.accepted else None)
        if cache is not None:
            ok = np.array([e is not None for e in emb["dlib"]])
            zero = np.zeros(EMBEDDING_SIZE, np.float32)
            arrays: dict[str, Any] = {"ok": ok}
            arrays.update({k: np.stack([e if e is not None else zero for e in v]) for k, v in emb.items()})
            arrays.update({f"ms_{k}": np.array(v) for k, v in ms.items()})
            np.savez_compressed(cache, **arrays)
    decisions: dict[str, list[tuple[str | None, Hashable | None]]] = {}
    rates: dict[str, dict[str, float]] = {}
    for kind in emb:
        gallery = Gallery(analyzers[kind].settings)
        probes: list[tuple[str | None, np.ndarray | None]] = []
        seen: dict[str, int] = {}
        for (name, _), e in zip(photos, emb[kind], strict=True):
            if name is not None and seen.get(name, 0) < enrol:
                seen[name] = seen.get(name, 0) + 1
                if e is not None:
                    gallery.add(name, e)
                continue
            probes.append((name, e))
        decisions[kind] = [(t, gallery.identify(e).person_id if e is not None else None) for t, e in probes]
        known = [(t, g) for t, g in decisions[kind] if t is not None]
        unknown = [g for t, g in decisions[kind] if t is None]
        rates[kind] = {"probes": len(known), "correct": sum(t == g for t, g in known) / max(len(known), 1),
                       "wrong_person": sum(g is not None and g != t for t, g in known) / max(len(known), 1),
                       "strangers": len(unknown),
                       "stranger_accepted": sum(g is not None for g in unknown) / max(len(unknown), 1)}
    same = sum(a == b for a, b in zip(decisions["dlib"], decisions["litert"], strict=True))
    both = [(a, b) for a, b in zip(emb["dlib"], emb["litert"], strict=True) if a is not None and b is not None]
    return {"people": len(chosen), "photos": len(photos), "decisions": len(decisions["dlib"]),
            "same_decision": same, "rates": rates,
            "embedding_distance": distance_stats(np.stack([a for a, _ in both]), np.stack([b for _, b in both])),
            "describe_ms_median": {k: float(np.median(v)) for k, v in ms.items() if v}}
