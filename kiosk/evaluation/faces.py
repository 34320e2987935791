"""Face identification evaluation on a folder of people/<Name>/*.jpg and strangers/*.jpg.

Protocol: for each person the first `enrol_photos` photos in name order are enrolled (one
template each, in one gallery of everybody), the remaining photos are probes that should be
identified as that person; every stranger photo is a probe that should be rejected.
Rates: identified / wrong_person / missed are fractions of the enrolled people's probes
(they add up to 1; a probe with no usable face counts as missed); stranger_accepted is the
fraction of strangers taken for anybody; no_face is the fraction of all images without a
usable face (none detected or rejected by the quality checks). Extra stranger folders (one photo
per stranger, e.g. ../shared/data/faces-extra-strangers) can be added to the strangers;
result["ci95"] gives a Wilson 95% interval [low, high] for stranger_accepted, wrong_person and
missed, result["counts"] the counts behind them.

Halves (half_of: CRC-32 of the person's name or the stranger's file stem) give a tuned-on /
held-out split. With one half alone the gallery has only that half's ~150 people; enrol_all
enrols everybody of the folder (~295, the size of issue 14's held-out gallery) and scores one
half's probes and strangers, since the stranger rate grows with the gallery.
"""

from __future__ import annotations

import io
import json
import logging
import os
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kiosk.atomic_write import replace_file
from kiosk.config import RecognitionSettings
from kiosk.errors import KioskError
from kiosk.evaluation.metrics import wilson_interval
from kiosk.gallery import Gallery
from kiosk.vision.embedding import EMBEDDING_SIZE, Embedding
from kiosk.vision.faces import FaceAnalyzer
from kiosk.vision.images import IMAGE_SUFFIXES, load_image

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
RESULT_KEYS = ("people", "templates", "probes", "strangers", "identified", "wrong_person",
               "missed", "stranger_accepted", "no_face", "counts", "ci95")
# Rates given with a Wilson 95% interval in result["ci95"] (and their counts in result["counts"]).
INTERVAL_KEYS = ("stranger_accepted", "wrong_person", "missed")


class EvaluationDataError(KioskError):
    """The evaluation folder does not have the people/<Name>/*.jpg + strangers/*.jpg layout."""


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def list_dataset(data_dir: Path) -> tuple[dict[str, list[Path]], list[Path]]:
    """({person name: photos in name order}, stranger photos) of an evaluation folder."""
    data_dir = Path(data_dir)
    people_dir = data_dir / "people"
    if not people_dir.is_dir():
        raise EvaluationDataError(f"{data_dir}: expected a people/<Name>/*.jpg folder inside")
    people = {d.name: _images(d) for d in sorted(people_dir.iterdir()) if d.is_dir()}
    people = {name: photos for name, photos in people.items() if photos}
    if not people:
        raise EvaluationDataError(f"{people_dir}: no person folders with photos")
    strangers_dir = data_dir / "strangers"
    strangers = _images(strangers_dir) if strangers_dir.is_dir() else []
    return people, strangers


def half_of(name: str) -> str:
    """Deterministic half "A" or "B" of a person name or stranger file stem (CRC-32 parity)."""
    return "A" if zlib.crc32(name.encode("utf-8")) % 2 == 0 else "B"


def make_half_split(src: Path, dst: Path, half: str = "B") -> Path:
    """Make dst/people/<Name> and dst/strangers/*.jpg symlinks to one half of src; returns dst."""
    if half not in ("A", "B"):
        raise ValueError("half must be 'A' or 'B'")
    people, strangers = list_dataset(Path(src))
    dst = Path(dst)
    (dst / "people").mkdir(parents=True, exist_ok=True)
    (dst / "strangers").mkdir(parents=True, exist_ok=True)
    for name, photos in people.items():
        if half_of(name) != half:
            continue
        link = dst / "people" / name
        if not link.exists():
            os.symlink(photos[0].parent.resolve(), link)
    for photo in strangers:
        if half_of(photo.stem) != half:
            continue
        link = dst / "strangers" / photo.name
        if not link.exists():
            os.symlink(photo.resolve(), link)
    return dst


def score_protocol(people: Mapping[str, Sequence[Embedding | None]],
                   strangers: Sequence[Embedding | None], enrol_photos: int,
                   settings: RecognitionSettings, gallery_people: Sequence[str] | None = None,
                   probe_people: Sequence[str] | None = None) -> dict[str, Any]:
    """The protocol on precomputed embeddings ((128,) float32 or None = no usable face), in photo order.

    gallery_people: who is enrolled (default: everybody in people). probe_people: whose probes are
    scored (default: the enrolled; each must be enrolled); no_face counts their photos and the strangers.
    """
    if enrol_photos < 1:
        raise ValueError("enrol_photos must be at least 1")
    enrolled = list(people) if gallery_people is None else list(gallery_people)
    scored = enrolled if probe_people is None else list(probe_people)
    if not set(scored) <= set(enrolled):
        raise ValueError("every scored person must be enrolled")
    gallery = Gallery(settings)
    for name in enrolled:
        templates = [e for e in people[name][:enrol_photos] if e is not None]
        if templates:
            gallery.add(name, np.stack(templates))
    probes = [(name, e) for name in scored for e in people[name][enrol_photos:]]
    identified = wrong = missed = 0
    for name, emb in probes:
        if emb is None:
            missed += 1
            continue
        who = gallery.identify(emb).person_id
        if who is None:
            missed += 1
        elif who == name:
            identified += 1
        else:
            wrong += 1
    accepted = sum(1 for e in strangers if e is not None and gallery.identify(e).known)
    all_images = [e for name in scored for e in people[name]] + list(strangers)
    n_probes = max(len(probes), 1)
    counts = {"stranger_accepted": accepted, "wrong_person": wrong, "missed": missed}
    totals = {"stranger_accepted": len(strangers), "wrong_person": len(probes), "missed": len(probes)}
    return {
        "people": len(enrolled),
        "templates": len(gallery),
        "probes": len(probes),
        "strangers": len(strangers),
        "identified": identified / n_probes,
        "wrong_person": wrong / n_probes,
        "missed": missed / n_probes,
        "stranger_accepted": accepted / max(len(strangers), 1),
        "no_face": sum(1 for e in all_images if e is None) / max(len(all_images), 1),
        "counts": counts,
        "ci95": {k: list(wilson_interval(counts[k], totals[k])) for k in INTERVAL_KEYS},
    }


def stranger_photos(folders: Sequence[Path], half: str | None = None) -> list[Path]:
    """Photos of extra stranger folders (*.jpg etc., one stranger each), optionally one half by file stem."""
    photos: list[Path] = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise EvaluationDataError(f"{folder}: not a folder of stranger photos")
        found = _images(folder)
        if not found:
            raise EvaluationDataError(f"{folder}: no photos inside")
        photos += [p for p in found if half is None or half_of(p.stem) == half]
    return photos


def cache_key(settings: RecognitionSettings, analyzer: object | None = None) -> str:
    """The settings that change an image's usable embedding, as a JSON string (cache validity)."""
    fields = settings.model_dump(mode="json", include={"detector", "upsample", "edge_pad", "num_jitters",
                                                       "landmark_model", "mirror_tta", "quality"})
    if settings.detector == "yunet":  # (HOG keys stay as they were: older caches remain valid)
        fields["yunet_score"] = settings.yunet_score
        fields["yunet_model"] = str(settings.yunet_model or "shipped")
        fields.pop("upsample")
    fields["analyzer"] = type(analyzer).__name__ if analyzer is not None else "DlibFaceAnalyzer"
    if settings.embedder != "dlib":  # (dlib's keys stay as they were before the setting existed)
        fields["embedder"] = settings.embedder_id()
    return json.dumps(fields, sort_keys=True)


def load_embedding_cache(path: Path, key: str) -> dict[str, Embedding | None]:
    """{relative photo path: (128,) float32 or None} from a cache .npz made with the same key, else {}.

    KioskError for an existing file that is no .npz at all (a zip): it would be overwritten after the
    run (`--cache kiosk.db` replaced the attendance database).
    """
    path = Path(path)
    if path.exists() and not path.is_file():
        raise KioskError(f"--cache {path} is not a file")
    if not path.is_file() or path.stat().st_size == 0:
        return {}
    with path.open("rb") as handle:
        if handle.read(4) != b"PK\x03\x04":
            raise KioskError(f"--cache {path} exists and is no embedding cache (.npz); choose another file "
                             "(it would be overwritten)")
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["key"]) != key:
                logger.info("embedding cache %s was made with other settings; ignoring it", path)
                return {}
            paths = [str(p) for p in data["paths"]]
            embeddings = data["embeddings"].astype(np.float32)
    except (OSError, KeyError, ValueError) as exc:
        logger.warning("ignoring unreadable embedding cache %s: %s", path, exc)
        return {}
    return {p: (None if np.isnan(e[0]) else e) for p, e in zip(paths, embeddings, strict=True)}


def save_embedding_cache(path: Path, key: str, entries: Mapping[str, Embedding | None]) -> None:
    """Write {relative photo path: (128,) float32 or None} to a cache .npz (NaN rows mean None)."""
    paths = sorted(entries)
    mat = np.full((len(paths), EMBEDDING_SIZE), np.nan, dtype=np.float32)
    for i, p in enumerate(paths):
        if entries[p] is not None:
            mat[i] = entries[p]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez(buffer, key=np.array(key), paths=np.array(paths), embeddings=mat)
    # a temp file of its own: two evaluations (pytest workers) saving at once each replace it whole
    replace_file(Path(path), buffer.getvalue(), mode=0o644)


def embed_dataset(data_dir: Path, settings: RecognitionSettings | None = None,
                  analyzer: FaceAnalyzer | None = None, progress: Progress | None = None,
                  cache: Path | None = None, extra_strangers: Sequence[Path] = (), strangers: bool = True,
                  people_half: str | None = None, strangers_half: str | None = None,
                  ) -> tuple[dict[str, list[Embedding | None]], list[Embedding | None]]:
    """({person: (128,) float32 or None per photo, in name order}, [same per stranger photo]) of data_dir.

    extra_strangers: more stranger photo files (see stranger_photos), after strangers/; in the
    cache they are keyed by their resolved path. strangers=False: people only (no stranger list).
    people_half / strangers_half ("A" or "B"): only that half (half_of) of people/ or strangers/
    (extra_strangers are taken as given).
    Every photo is analysed once with the analyzer (default: the dlib one from settings); the
    largest face that passes the quality checks is used. progress(done, total) is called per photo.
    cache: optional .npz of embeddings keyed by the photo's path relative to data_dir, reused when
    it was made with the same detection/embedding/quality settings and updated with new photos.
    """
    settings = settings or RecognitionSettings()
    data_dir = Path(data_dir)
    people, stranger_files = list_dataset(data_dir)
    if people_half is not None:
        people = {name: photos for name, photos in people.items() if half_of(name) == people_half}
    if strangers_half is not None:
        stranger_files = [p for p in stranger_files if half_of(p.stem) == strangers_half]
    stranger_files = stranger_files + [Path(p) for p in extra_strangers] if strangers else []
    key = cache_key(settings, analyzer)
    cached = load_embedding_cache(cache, key) if cache is not None else {}
    fresh: dict[str, Embedding | None] = {}
    total = sum(len(p) for p in people.values()) + len(stranger_files)
    done = 0

    def embed(path: Path) -> Embedding | None:
        nonlocal done, analyzer
        try:
            rel = path.relative_to(data_dir).as_posix()
        except ValueError:  # an extra stranger outside data_dir
            rel = str(path.resolve())
        if rel in cached:
            emb = cached[rel]
        else:
            if analyzer is None:
                from kiosk.vision.faces import make_analyzer
                analyzer = make_analyzer(settings)
            face = analyzer.largest_face(load_image(path))
            emb = None
            if face is None or face.embedding is None or face.rejected_reason is not None:
                logger.debug("%s: no usable face (%s)", path, face.rejected_reason if face else "none found")
            else:
                emb = np.asarray(face.embedding, dtype=np.float32)
            fresh[rel] = emb
        done += 1
        if progress is not None:
            progress(done, total)
        return emb

    people_emb = {name: [embed(p) for p in photos] for name, photos in people.items()}
    stranger_emb = [embed(p) for p in stranger_files]
    if cache is not None and fresh:
        save_embedding_cache(cache, key, {**cached, **fresh})
    return people_emb, stranger_emb


def evaluate_faces(data_dir: Path, enrol_photos: int = 3, settings: RecognitionSettings | None = None,
                   analyzer: FaceAnalyzer | None = None, progress: Progress | None = None,
                   cache: Path | None = None, extra_strangers: Sequence[Path] = (),
                   half: str | None = None, enrol_all: bool = False) -> dict[str, Any]:
    """Run the protocol on data_dir (people/<Name>/*.jpg, strangers/*.jpg); returns RESULT_KEYS.

    Embeddings as embed_dataset makes them (analyzer, progress, cache, extra_strangers); the
    decision rule, comparison space included, is settings'. half ("A" or "B"): only that half's
    people and strangers/ (extra_strangers as given); with enrol_all every person of data_dir is
    enrolled (a gallery of the whole folder's size) but only the half's probes are scored.
    """
    if half not in (None, "A", "B"):
        raise ValueError("half must be 'A', 'B' or None")
    settings = settings or RecognitionSettings()
    people_emb, stranger_emb = embed_dataset(data_dir, settings, analyzer, progress, cache, extra_strangers,
                                             people_half=None if enrol_all else half, strangers_half=half)
    scored = None if half is None else [name for name in people_emb if half_of(name) == half]
    result = score_protocol(people_emb, stranger_emb, enrol_photos, settings, probe_people=scored)
    logger.info("face evaluation on %s (half %s, enrol_all %s): %s", data_dir, half, enrol_all, result)
    return result
