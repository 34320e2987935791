"""`kiosk bench`: our pipeline against the naive per-frame baseline on the same replayed frames.

Ours: the Pipeline (cheap presence check on every frame, around the tracked face once one is
found; landmarks + embedding only for the burst frames of a sharp or steady face), each decision handed on
as the door does: the attendance rules journal the event (fsync'd, durable), the greeting shows,
then the event is committed to a scratch SQLite file. Baseline: what
face_recognition's Raspberry Pi example does, on every full frame: HOG detection with one
upsample, then an embedding of every face found, then a gallery search.

Figures, each for both on the same frames:
  per frame      every frame of the stream (what the CPU does all day);
  per check-in   all frames from the face's arrival to the decision, ours up to the greeting
                 (the journalled decision; the work behind one check-in; this is ours_p95_ms /
                 baseline_p95_ms / speedup); checkin_commit_ms adds the database commit that
                 follows the greeting;
  burst only     just the frames ours analysed fully (the embedding both must compute
                 dominates here, so this ratio is the smallest).
Also: gallery search time at 100, 1,000 and 10,000 enrolled people (random unit vectors,
3 templates each).
"""

from __future__ import annotations

import gc
import logging
import platform
import tempfile
import time
from datetime import UTC, datetime, timedelta
from itertools import zip_longest
from pathlib import Path
from typing import Any, cast

import cv2
import numpy as np
import numpy.typing as npt

from kiosk import store
from kiosk.attendance import Attendance
from kiosk.clock import ManualClock
from kiosk.config import Settings
from kiosk.errors import KioskError
from kiosk.gallery import EMBEDDING_SIZE, Gallery
from kiosk.gc_tuning import freeze_startup_objects
from kiosk.journal import JOURNAL_NAME, Journal
from kiosk.outbox import EventOutbox
from kiosk.pipeline import Pipeline
from kiosk.replay_scenes import Arrival, Visit, make_arrivals_scene
from kiosk.vision.faces import IMAGE_SUFFIXES, FaceAnalyzer, load_image

logger = logging.getLogger(__name__)

SEARCH_SIZES = (100, 1000, 10_000)
# Frames outside check-ins on which the (slow) baseline also runs, for its per-frame figures.
BASELINE_EXTRA_FRAMES = 12


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 2) if values else None


def _summary(values: list[float]) -> dict[str, float | None]:
    return {"p50": _pct(values, 50), "p95": _pct(values, 95), "n": len(values)}


def load_frames(frames_dir: Path) -> list[npt.NDArray[np.uint8]]:
    """The images of a replay folder in name order, RGB uint8 HxWx3; KioskError when none."""
    files = sorted(p for p in Path(frames_dir).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) \
        if Path(frames_dir).is_dir() else []
    frames: list[npt.NDArray[np.uint8]] = []
    for path in files:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is not None:  # IMREAD_COLOR gives uint8 BGR
            frames.append(cast(npt.NDArray[np.uint8], cv2.cvtColor(image, cv2.COLOR_BGR2RGB)))
    if not frames:
        raise KioskError(f"no replay frames (jpg/png) in {frames_dir}")
    return frames


def search_times(sizes: tuple[int, ...] = SEARCH_SIZES, templates_per_person: int = 3,
                 probes: int = 200, settings: Settings | None = None) -> dict[str, dict[str, float | None]]:
    """Gallery.identify() time per probe (ms p50/p95) at each gallery size (people)."""
    rng = np.random.default_rng(0)
    out: dict[str, dict[str, float | None]] = {}
    for n in sizes:
        mat = rng.normal(size=(n * templates_per_person, EMBEDDING_SIZE)).astype(np.float32)
        mat /= np.linalg.norm(mat, axis=1, keepdims=True)
        ids = np.repeat(np.arange(n), templates_per_person).tolist()
        gallery = Gallery.from_arrays(mat, ids, settings.recognition if settings else None)
        queries = rng.normal(size=(probes + 10, EMBEDDING_SIZE)).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        times = []
        for i, q in enumerate(queries):
            start = time.perf_counter()
            gallery.identify(q)
            if i >= 10:  # warm-up (first call builds the search matrix)
                times.append((time.perf_counter() - start) * 1000.0)
        out[str(n)] = _summary(times)
    return out


SAMPLE_FACES = Path(__file__).resolve().parents[1] / "tests" / "data" / "faces"
# In the sample scene this person is not enrolled: each of their photos walks up as a stranger.
SAMPLE_STRANGER_PERSON = "Ray_Romano"
# How an enrolled person's first photo (and a strangers/ photo) comes back to the door: as it is,
# mirrored (the other side of the face), further away (smaller face), darker.
SAMPLE_VARIANTS: tuple[dict[str, Any], ...] = ({}, {"mirror": True}, {"side": 230}, {"gain": 0.75})


def sample_arrivals(faces: Path = SAMPLE_FACES) -> tuple[dict[str, list[Path]], list[Arrival]]:
    """({enrolled name: enrolment photos}, arrivals in scene order) of the bench's sample scene.

    Each person in faces/people except SAMPLE_STRANGER_PERSON is enrolled with photos 2-4; their
    photo 1 comes back in every SAMPLE_VARIANTS, their later photos (and faces/extra/<name>/) as
    they are. Strangers: the faces/strangers photos (as they are, mirrored, further away) and
    every photo of SAMPLE_STRANGER_PERSON. Known and stranger arrivals alternate.
    """
    people = sorted(p for p in (faces / "people").iterdir() if p.is_dir()) if (faces / "people").is_dir() else []
    if not people:
        raise KioskError(f"no sample faces at {faces}: give a folder of replay frames (--frames)")
    enrol: dict[str, list[Path]] = {}
    known: list[Arrival] = []
    strange: list[Arrival] = []
    for folder in people:
        photos = sorted(folder.glob("*.jpg"))
        if folder.name == SAMPLE_STRANGER_PERSON or len(photos) < 2:
            strange += [Arrival(p, "stranger", True) for p in photos]
            continue
        enrol[folder.name] = photos[1:4]
        known += [Arrival(photos[0], folder.name, **v) for v in SAMPLE_VARIANTS]
        known += [Arrival(p, folder.name) for p in photos[4:] + sorted((faces / "extra" / folder.name).glob("*.jpg"))]
    for photo in sorted((faces / "strangers").glob("*.jpg")):
        strange += [Arrival(photo, "stranger", True, **v) for v in SAMPLE_VARIANTS[:3]]
    arrivals = [a for pair in zip_longest(known, strange) for a in pair if a is not None]
    return enrol, arrivals


def sample_scene(out_dir: Path, analyzer: FaceAnalyzer, settings: Settings,
                 faces: Path = SAMPLE_FACES) -> tuple[Gallery, list[Visit], dict[int, str]]:
    """Write the sample scene's frames (sample_arrivals) into out_dir; (gallery of the enrolled
    people, visits, {person id: name}). Needs a source checkout (tests/data/faces)."""
    enrol, arrivals = sample_arrivals(faces)
    gallery = Gallery(settings.recognition)
    names: dict[int, str] = {}
    for pid, (name, photos) in enumerate(enrol.items(), 1):
        found = [analyzer.largest_face(load_image(p)) for p in photos]
        embeddings = [f.embedding for f in found if f is not None and f.accepted and f.embedding is not None]
        if embeddings:
            gallery.add(pid, np.stack(embeddings))
            names[pid] = name
    visits = make_arrivals_scene([a for a in arrivals if a.stranger or a.label in names.values()], out_dir, 5.0)
    return gallery, visits, names


def _gallery_from_db(settings: Settings) -> Gallery:
    path = Path(settings.database.path)
    if not path.exists():
        logger.warning("no database at %s: benchmarking with an empty gallery (all faces unknown)", path)
        return Gallery(settings.recognition)
    with store.open_from_settings(settings) as db:
        ids, matrix = store.all_templates(db)
    return Gallery.from_arrays(matrix, ids.tolist(), settings.recognition)


def _ours_pass(settings: Settings, analyzer: FaceAnalyzer, gallery: Gallery, classifier: Any,
               frames: list[npt.NDArray[np.uint8]], fps: float) -> dict[str, Any]:
    """One pass of the Pipeline over the frames, each decision handed on as the door does it
    (kiosk.door_loop.act): the attendance rules journal the event (fsync'd: durable from here on),
    the greeting would show, then the event is committed to a scratch SQLite file.

    {"checkins": [...], "frame_ms" (whole frames, commit included), "greet_ms" (frames up to the
    greeting), "presence_ms", "rechecks", "presence_counts", "events" (committed)}.
    """
    pipeline = Pipeline(analyzer, gallery, classifier, settings, consent=lambda _pid: True)
    frame_ms: list[float] = []
    greet_ms: list[float] = []
    presence_ms: list[float] = []
    checkins: list[dict[str, Any]] = []
    rechecks = events = 0
    burst: list[int] = []
    visit: list[int] = []
    t0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    clock = ManualClock(t0)
    # Every decision makes an event (no cooldown), as before: the same writes in every pass.
    rules = settings.model_copy(update={"attendance": settings.attendance.model_copy(update={"cooldown_s": 0.0})})
    with tempfile.TemporaryDirectory(prefix="kiosk-bench-") as tmp:
        db = store.open_database(Path(tmp) / "bench.db")
        outbox = EventOutbox(db, "bench", Journal(Path(tmp) / JOURNAL_NAME), wall_clock=clock.now)
        outbox.defer_writes = True  # as the door: journal, greet, then write
        try:
            outbox.start()
            person = store.add_person(db, "BENCH", "Bench Person")
            attendance = Attendance(outbox, rules, clock, monotonic=lambda: clock.now().timestamp())
            for i, image in enumerate(frames):
                clock.set(t0 + timedelta(seconds=i / fps))
                start = time.perf_counter()
                decision = pipeline.process(image, i / fps)
                journal_ms = commit_ms = 0.0
                greeted = decided = time.perf_counter()
                if decision is not None:
                    if decision.known:
                        attendance.sighting(person.id, clock.now(), match_distance=decision.distance,
                                            match_score=decision.score)
                    else:
                        attendance.unknown_face(clock.now())
                    greeted = time.perf_counter()  # the event is in the journal: the door greets now
                    journal_ms = (greeted - decided) * 1000.0
                    events += len(outbox.write_new())
                    commit_ms = (time.perf_counter() - greeted) * 1000.0
                end = time.perf_counter()
                frame_ms.append((end - start) * 1000.0)
                greet_ms.append((greeted - start) * 1000.0)
                presence_ms.append(pipeline.last_frame_ms["presence"])
                if "embed" in pipeline.last_frame_ms:
                    burst.append(i)
                if decision is not None or pipeline.state != "idle":
                    visit.append(i)
                if decision is not None:
                    if decision.recheck:
                        rechecks += 1
                    else:
                        stages = dict(decision.timings_ms)
                        stages.pop("total", None)
                        stages["store"] = journal_ms
                        checkins.append({"burst": list(burst), "visit": list(visit), "stages": stages,
                                         "burst_total": sum(stages.values()), "person": decision.person_id,
                                         "visit_total": sum(greet_ms[j] for j in visit),
                                         "visit_commit_total": sum(frame_ms[j] for j in visit),
                                         "commit": commit_ms, "mirror": decision.mirror_passes > 0})
                    burst, visit = [], []
                elif pipeline.state in ("idle", "done"):
                    burst, visit = [], []
            if outbox.pending:
                raise KioskError(f"bench: {outbox.pending} events not written to the scratch database")
        finally:
            outbox.close()
            db.close()
    return {"checkins": checkins, "frame_ms": frame_ms, "greet_ms": greet_ms, "presence_ms": presence_ms,
            "rechecks": rechecks, "presence_counts": dict(pipeline.presence_counts), "events": events}


def _baseline_pass(frames: list[npt.NDArray[np.uint8]], indices: list[int], gallery: Gallery,
                   ) -> tuple[dict[int, float], dict[str, list[float]]]:
    """face_recognition's naive loop on frames[indices]: ({frame index: ms}, {stage: ms per frame})."""
    import face_recognition

    base_ms: dict[int, float] = {}
    base_stage: dict[str, list[float]] = {"detect": [], "embed": [], "match": []}
    for i in indices:
        image = frames[i]
        s0 = time.perf_counter()
        boxes = face_recognition.face_locations(image, 1, "hog")
        s1 = time.perf_counter()
        encodings = face_recognition.face_encodings(image, boxes)
        s2 = time.perf_counter()
        for enc in encodings:
            gallery.identify(np.asarray(enc, dtype=np.float32))
        s3 = time.perf_counter()
        base_ms[i] = (s3 - s0) * 1000.0
        base_stage["detect"].append((s1 - s0) * 1000.0)
        base_stage["embed"].append((s2 - s1) * 1000.0)
        base_stage["match"].append((s3 - s2) * 1000.0)
    return base_ms, base_stage


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(float(np.median(present)), 2) if present else None


def run_bench(
    settings: Settings,
    frames_dir: Path | None,
    json_out: bool = False,
    *,
    gallery: Gallery | None = None,
    fps: float = 5.0,
    search_sizes: tuple[int, ...] = SEARCH_SIZES,
    analyzer: FaceAnalyzer | None = None,
    repeats: int = 5,
    stages: bool = True,
    expected: list[str] | None = None,
    names: dict[int, str] | None = None,
) -> dict[str, Any]:
    """Benchmark on the replay frames in frames_dir; returns a JSON-ready dict (see module doc).

    frames_dir None: the sample scene (sample_arrivals, from tests/data/faces of a source
    checkout) with its people enrolled in memory. gallery: enrolled templates (default: the
    sample's, else those in the configured database). repeats: passes of both loops over the
    same frames; ours_p95_ms, baseline_p95_ms and speedup are the medians of the passes' figures
    (speedup: of each pass's own ratio), the detailed summaries pool all passes. stages: also
    time each stage with both detectors and both embedders on the check-ins' first analysed
    frames (bench_stages). expected: the visits' labels ("stranger" or a name of names
    {person id: name}) to count correct decisions. json_out only quietens progress logging.
    """
    from kiosk.vision.faces import make_analyzer

    log = logger.debug if json_out else logger.info
    analyzer = analyzer or make_analyzer(settings.recognition)
    if frames_dir is None:
        with tempfile.TemporaryDirectory(prefix="kiosk-bench-frames-") as tmp:
            sample_gallery, visits, sample_names = sample_scene(Path(tmp), analyzer, settings)
            return run_bench(settings, Path(tmp), json_out, gallery=gallery or sample_gallery, fps=fps,
                             search_sizes=search_sizes, analyzer=analyzer, repeats=repeats, stages=stages,
                             expected=[v.label for v in visits], names=sample_names)
    frames = load_frames(frames_dir)
    gallery = gallery if gallery is not None else _gallery_from_db(settings)
    classifier = None
    if settings.expression.enabled:
        from kiosk.vision.expression import load_classifier

        try:
            classifier = load_classifier(settings.expression)
        except KioskError as exc:
            logger.warning("expression stage skipped: %s", exc)
    log("bench: %d frames, %d enrolled people, %d passes", len(frames), len(gallery.people), repeats)

    passes: list[dict[str, Any]] = []
    freeze_startup_objects()  # as the door does once it is ready (kiosk.gc_tuning)
    try:
        for r in range(max(1, repeats)):
            ours = _ours_pass(settings, analyzer, gallery, classifier, frames, fps)
            checkins = ours["checkins"]
            if not checkins:
                raise KioskError(f"no check-in happened in {frames_dir}: no steady face large enough "
                                 f"(min {settings.recognition.quality.min_face_px} px) in the frames")
            # The naive loop on every frame of the check-ins plus a few others (its per-frame figures).
            used = sorted({i for c in checkins for i in c["visit"] + c["burst"]})
            others = [i for i in range(len(frames)) if i not in set(used)]
            step = max(1, len(others) // BASELINE_EXTRA_FRAMES)
            base_ms, base_stage = _baseline_pass(frames, sorted(set(used) | set(others[::step][:BASELINE_EXTRA_FRAMES])),
                                                 gallery)
            ours["base_ms"], ours["base_stage"] = base_ms, base_stage
            ours_p95 = _pct([c["visit_total"] for c in checkins], 95)
            base_p95 = _pct([sum(base_ms[i] for i in c["visit"]) for c in checkins], 95)
            ours["summary"] = {"ours_p95_ms": ours_p95, "baseline_p95_ms": base_p95, "speedup": _ratio(base_p95, ours_p95)}
            log("pass %d: %d check-ins, %s", r + 1, len(checkins), ours["summary"])
            passes.append(ours)
    finally:
        gc.unfreeze()  # the bench may run inside another program (tests)
    checkins = [c for p in passes for c in p["checkins"]]
    frame_ms = [v for p in passes for v in p["frame_ms"]]
    base_all = [(p["base_ms"], c) for p in passes for c in p["checkins"]]
    base_frames = [v for p in passes for v in p["base_ms"].values()]

    stage_names = ("detect", "embed", "expression", "match", "store")
    first = passes[0]["checkins"]
    result: dict[str, Any] = {
        "frames": len(frames),
        "frame_size": f"{frames[0].shape[1]}x{frames[0].shape[0]}",
        "repeats": len(passes),
        "passes": [p["summary"] for p in passes],
        "checkins": len(first),
        "checkins_known": sum(c["person"] is not None for c in first),
        "checkins_mirror_pass": sum(c["mirror"] for c in first),
        "rechecks": passes[0]["rechecks"],
        "presence_searches": passes[0]["presence_counts"],
        "events_written": passes[0]["events"],
        "burst_frames_mean": round(float(np.mean([len(c["burst"]) for c in first])), 2),
        "visit_frames_mean": round(float(np.mean([len(c["visit"]) for c in first])), 2),
        "ours": {
            "frame_ms": _summary(frame_ms),
            "presence_ms": _summary([v for p in passes for v in p["presence_ms"]]),
            "checkin_ms": _summary([c["visit_total"] for c in checkins]),
            "checkin_commit_ms": _summary([c["visit_commit_total"] for c in checkins]),
            "commit_ms": _summary([c["commit"] for c in checkins]),
            "burst_ms": _summary([c["burst_total"] for c in checkins]),
            "burst_stage_ms": {k: _summary([c["stages"].get(k, 0.0) for c in checkins]) for k in stage_names},
        },
        "baseline": {
            "frame_ms": _summary(base_frames),
            "checkin_ms": _summary([sum(b[i] for i in c["visit"]) for b, c in base_all]),
            "burst_ms": _summary([sum(b[i] for i in c["burst"]) for b, c in base_all]),
            "frame_stage_ms": {k: _summary([v for p in passes for v in p["base_stage"][k]])
                               for k in ("detect", "embed", "match")},
        },
        "search_ms": search_times(search_sizes, settings=settings),
        "machine": {"python": platform.python_version(), "machine": platform.machine(),
                    "processor": platform.processor() or platform.machine()},
    }
    if expected is not None and len(expected) == len(first):
        names = names or {}
        result["checkins_correct"] = sum(
            (names.get(int(c["person"]), "?") if c["person"] is not None else "stranger") == label
            for c, label in zip(first, expected, strict=True))
        result["checkins_strangers"] = sum(label == "stranger" for label in expected)
    ours_s, base = result["ours"], result["baseline"]
    result["ours_p95_ms"] = _median([p["summary"]["ours_p95_ms"] for p in passes])
    result["baseline_p95_ms"] = _median([p["summary"]["baseline_p95_ms"] for p in passes])
    result["speedup"] = _median([p["summary"]["speedup"] for p in passes])
    result["burst_ours_p95_ms"] = ours_s["burst_ms"]["p95"]
    result["burst_baseline_p95_ms"] = base["burst_ms"]["p95"]
    result["burst_speedup"] = _ratio(base["burst_ms"]["p95"], ours_s["burst_ms"]["p95"])
    result["ours_frame_p95_ms"] = ours_s["frame_ms"]["p95"]
    result["baseline_frame_p95_ms"] = base["frame_ms"]["p95"]
    result["frame_speedup"] = _ratio(base["frame_ms"]["p50"], ours_s["frame_ms"]["p50"])
    result["search_10k_ms"] = result["search_ms"].get("10000", {}).get("p50")
    result["embedder"] = settings.recognition.embedder
    result["detector"] = settings.recognition.detector
    result["embed_ms_p50"] = ours_s["burst_stage_ms"]["embed"]["p50"]
    if stages:
        from kiosk.bench_stages import stage_times

        firsts = sorted({c["burst"][0] for c in first if c["burst"]})
        result["stages"] = stage_times(settings, [frames[i] for i in firsts], gallery)
    return result


EMBEDDERS = ("dlib", "litert")


def embedder_times(settings: Settings, photos: list[Path], rounds: int = 2) -> dict[str, dict[str, Any]]:
    """ms per face embedding (as the door makes it: with the mirror pass when mirror_tta) for
    dlib and its LiteRT twin on the same faces, interleaved so both see the same machine load.

    photos: face photos (the largest face of each is used); {"dlib": summary, "litert": summary}.
    """
    from kiosk.vision.faces import load_image, make_analyzer

    analyzers = {name: make_analyzer(settings.recognition.model_copy(update={"embedder": name}))
                 for name in EMBEDDERS}
    faces = []
    for path in photos:
        image = load_image(path, max_side=800)
        boxes = analyzers["dlib"].detect(image)
        if boxes:
            faces.append((image, max(boxes, key=lambda b: (b[2] - b[0]) * (b[1] - b[3]))))
    times: dict[str, list[float]] = {name: [] for name in EMBEDDERS}
    for _ in range(rounds):
        for image, box in faces:
            for name, analyzer in analyzers.items():
                start = time.perf_counter()
                analyzer.embed(image, box)
                times[name].append((time.perf_counter() - start) * 1000.0)
    return {name: _summary(values) for name, values in times.items()}


def add_embedder_comparison(result: dict[str, Any], settings: Settings, photos: list[Path]) -> dict[str, Any]:
    """result with "embedders" ({dlib, litert}: ms per face) and embed_speedup (dlib / litert, p50)."""
    result["embedders"] = embedder_times(settings, photos)
    result["embed_speedup"] = _ratio(result["embedders"]["dlib"]["p50"], result["embedders"]["litert"]["p50"])
    return result


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def format_bench(result: dict[str, Any]) -> str:
    """A short human-readable table of a run_bench() result."""
    ours, base = result["ours"], result["baseline"]
    rows = [
        ("per frame (stream)", ours["frame_ms"], base["frame_ms"], result["frame_speedup"]),
        ("per check-in (arrival..greeting)", ours["checkin_ms"], base["checkin_ms"], result["speedup"]),
        ("  + database commit after greeting", ours["checkin_commit_ms"], base["checkin_ms"],
         _ratio(base["checkin_ms"]["p95"], ours["checkin_commit_ms"]["p95"])),
        ("per check-in burst only", ours["burst_ms"], base["burst_ms"], result["burst_speedup"]),
    ]
    correct = ""
    if "checkins_correct" in result:
        correct = (f", {result['checkins_correct']} of {result['checkins']} right, {result['checkins_strangers']}"
                   " of them strangers")
    lines = [
        f"{result['frames']} frames ({result['frame_size']}), {result['checkins']} check-ins "
        f"({result['checkins_known']} recognised{correct}); per check-in {result['visit_frames_mean']} frames "
        f"from arrival to decision, {result['burst_frames_mean']} of them analysed, "
        f"{result['checkins_mirror_pass']} with a mirror pass; {result['detector']} + {result['embedder']}; "
        "presence searches: " + ", ".join(f"{k} {v}" for k, v in result["presence_searches"].items()),
        f"{result['repeats']} passes; ours p95 / naive p95 / x per pass: " + ", ".join(
            f"{p['ours_p95_ms']} / {p['baseline_p95_ms']} / {p['speedup']}" for p in result["passes"])
        + " (the JSON's figures are the medians)",
        f"{'ms':34}{'ours p50':>10}{'p95':>9}{'naive p50':>11}{'p95':>9}{'x (p95)':>9}",
    ]
    for name, o, b, x in rows:
        lines.append(f"{name:34}{o['p50']:>10}{o['p95']:>9}{b['p50']:>11}{b['p95']:>9}{x!s:>9}")
    lines.append("ours, per check-in burst: " + ", ".join(
        f"{k} {v['p50']}/{v['p95']}" for k, v in ours["burst_stage_ms"].items())
        + f"; after the greeting: commit {ours['commit_ms']['p50']}/{ours['commit_ms']['p95']} (p50/p95 ms)")
    lines.append("naive, per frame: " + ", ".join(
        f"{k} {v['p50']}/{v['p95']}" for k, v in base["frame_stage_ms"].items()) + " (p50/p95 ms)")
    for size, summary in result["search_ms"].items():
        lines.append(f"gallery search, {int(size):>6} people x 3 templates: "
                     f"p50 {summary['p50']} ms, p95 {summary['p95']} ms")
    if "stages" in result:
        from kiosk.bench_stages import format_stages

        lines += format_stages(result["stages"])
    if "embedders" in result:
        lines.append("embedding per face (p50/p95 ms): " + ", ".join(
            f"{k} {v['p50']}/{v['p95']}" for k, v in result["embedders"].items())
            + f"; dlib / litert {result['embed_speedup']}x (this run uses {result['embedder']})")
    return "\n".join(lines)
