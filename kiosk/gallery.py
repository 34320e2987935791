"""Enrolled face templates as one float32 matrix and the identification decision rule.

All templates live in one (N, 128) float32 matrix with a parallel array of person indices, so
identifying a face is one matrix product: about 0.3 ms for 10,000 people x 3 templates.
A person may have several templates (photos). With the default template_aggregation="mean" a
person is searched as the mean of their templates (their centroid), which on LFW misses fewer
enrolled people than the nearest single template at the same stranger acceptance.

Templates stay dlib's raw 128-d embeddings (as stored, erased and synced); they and the probes
are mapped into the comparison space (recognition.comparison) only when compared: "wccn" scales
each embedding to length 1, multiplies it by the WCCN matrix (models/face_wccn.npy) and scales
the result to length sqrt(2); "length" does the same without the matrix; "raw" compares dlib's
embeddings as they are. sqrt(2) is about dlib's own length (median 1.40 on ../shared/data), so
distances keep roughly face_recognition's scale and every threshold stays a distance.

The rule (identify) also normalises the best distance against the site's own gallery: it subtracts
the weighted mean distance to the next few people and the candidate's distance to their nearest
colleague, and compares that with a threshold that is stricter for galleries under 295 people
(RecognitionSettings.max_normalised_distance and the README's tables).
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from kiosk.config import RecognitionSettings
from kiosk.errors import GalleryError, ModelError
from kiosk.vision.embedding import EMBEDDING_SIZE, Embedding, as_embeddings

logger = logging.getLogger(__name__)

__all__ = ["EMBEDDING_SIZE", "Gallery", "Match", "PersonId", "comparison_matrix", "match_score", "unit_rows"]

PersonId = Hashable
Labels = npt.NDArray[np.int32]

# Length of embeddings in the comparison space: dlib's typical length (median 1.40), so that
# distances keep about their raw scale.
COMPARISON_LENGTH = float(np.sqrt(2.0))
WCCN_NAME = "face_wccn.npy"
# The shipped matrix: the repository's models/ folder (source checkout, editable install), or
# <venv>/share/kiosk/models/ where a regular install puts it (pyproject data-files).
WCCN_LOCATIONS = (
    Path(__file__).resolve().parents[1] / "models" / WCCN_NAME,
    Path(sys.prefix) / "share" / "kiosk" / "models" / WCCN_NAME,
)
# Gallery size (people) the normalised rule was tuned at; smaller galleries get a stricter threshold.
NORMALISATION_GALLERY = 295
DEFAULT_WCCN = next((p for p in WCCN_LOCATIONS if p.is_file()), WCCN_LOCATIONS[0])


def unit_rows(x: npt.ArrayLike) -> Embedding:
    """(M, 128) or (128,) rows scaled to length 1, float32 (an all-zero row stays zero)."""
    rows = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=-1, keepdims=True)
    scaled: Embedding = rows / np.maximum(norms, np.float32(1e-12))
    return scaled


@functools.lru_cache(maxsize=4)
def _load_matrix(path: Path, check: bool) -> Embedding:
    from kiosk.vision.runtime import verify_checksum

    if not path.is_file():
        raise ModelError(f"WCCN matrix not found: {path} (or set recognition.comparison: length)")
    if check:
        verify_checksum(path, setting="recognition.comparison_verify_checksum")
    try:
        matrix = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read the WCCN matrix {path}: {exc}") from None
    if matrix.shape != (EMBEDDING_SIZE, EMBEDDING_SIZE) or not np.all(np.isfinite(matrix)):
        raise ModelError(f"{path}: expected a finite {EMBEDDING_SIZE}x{EMBEDDING_SIZE} matrix, "
                         f"got shape {matrix.shape}")
    loaded: Embedding = np.ascontiguousarray(matrix, dtype=np.float32)
    loaded.flags.writeable = False
    logger.info("loaded WCCN matrix %s", path)
    return loaded


def comparison_matrix(settings: RecognitionSettings) -> Embedding | None:
    """The (128, 128) float32 WCCN matrix of recognition.comparison "wccn" (SHA-256 checked), else None."""
    if settings.comparison != "wccn":
        return None
    path = Path(settings.comparison_model) if settings.comparison_model else DEFAULT_WCCN
    return _load_matrix(path.resolve(), settings.comparison_verify_checksum)


def match_score(distance: float, max_distance: float) -> float:
    """Confidence 0..1 of an accepted match at this distance: 1 - distance / max_distance, clipped
    (0 at the rejection boundary, 1 for a perfect match; 1 when max_distance is 0)."""
    if max_distance <= 0:
        return 1.0
    return float(np.clip(1.0 - distance / max_distance, 0.0, 1.0))


@dataclass(frozen=True)
class Match:
    """Result of identify(): person_id is None for "unknown".

    distance: Euclidean distance, in the comparison space, to the best person (their mean template, or
    nearest one with template_aggregation "min"; inf when the gallery is empty).
    margin: second-best person's distance minus the best one's (inf with fewer than two people).
    score: 0..1 confidence; 0 at the rejection boundary, 1 for a perfect match.
    """

    person_id: PersonId | None
    distance: float
    margin: float
    score: float
    candidate: PersonId | None = None

    @property
    def known(self) -> bool:
        """True when the face was identified as an enrolled person."""
        return self.person_id is not None


def _as_matrix(embeddings: npt.ArrayLike | Iterable[npt.ArrayLike]) -> Embedding:
    return as_embeddings(embeddings, GalleryError)


class Gallery:
    """Enrolled templates (N, 128) float32 with a parallel person array; identify() applies the rule."""

    def __init__(self, settings: RecognitionSettings | None = None) -> None:
        self.settings = settings or RecognitionSettings()
        self._matrix = comparison_matrix(self.settings)
        self._templates: Embedding = np.zeros((0, EMBEDDING_SIZE), dtype=np.float32)
        self._labels: Labels = np.zeros(0, dtype=np.int32)  # index into self._people per template
        self._people: list[PersonId] = []
        self._index: dict[PersonId, int] = {}
        self._search: tuple[Embedding, Embedding, Labels] | None = None  # matrix, sq norms, labels
        self._isolations: dict[int, float] = {}  # person label -> _isolation(), for the current _search

    # -- contents ------------------------------------------------------------------------------
    def __len__(self) -> int:
        """Number of templates."""
        return int(self._templates.shape[0])

    def __contains__(self, person_id: object) -> bool:
        return person_id in self._index and bool(np.any(self._labels == self._index[person_id]))

    @property
    def people(self) -> list[PersonId]:
        """Enrolled person ids, in enrolment order."""
        return [p for p in self._people if p in self]

    @property
    def templates(self) -> Embedding:
        """All templates, (N, 128) float32 (read-only view)."""
        view = self._templates.view()
        view.flags.writeable = False
        return view

    @property
    def person_ids(self) -> list[PersonId]:
        """The person of each template row, length N."""
        return [self._people[i] for i in self._labels]

    def templates_of(self, person_id: PersonId) -> Embedding:
        """A person's templates, (k, 128) float32; raises GalleryError for an unknown person."""
        if person_id not in self:
            raise GalleryError(f"unknown person: {person_id!r}")
        rows: Embedding = self._templates[self._labels == self._index[person_id]].copy()
        return rows

    def add(self, person_id: PersonId, embeddings: npt.ArrayLike | Iterable[npt.ArrayLike]) -> None:
        """Add one (128,) or several (k, 128) templates for a person (new or already enrolled)."""
        mat = _as_matrix(embeddings)
        if person_id not in self._index:
            self._index[person_id] = len(self._people)
            self._people.append(person_id)
        label = self._index[person_id]
        self._templates = np.concatenate([self._templates, mat])
        self._labels = np.concatenate([self._labels, np.full(len(mat), label, dtype=np.int32)])
        self._search = None

    def remove(self, person_id: PersonId) -> int:
        """Drop all templates of a person; returns how many were removed (0 if unknown)."""
        if person_id not in self._index:
            return 0
        keep = self._labels != self._index[person_id]
        removed = int((~keep).sum())
        self._templates = self._templates[keep]
        self._labels = self._labels[keep]
        self._search = None
        return removed

    @classmethod
    def from_arrays(cls, templates: npt.ArrayLike, person_ids: Iterable[PersonId],
                    settings: RecognitionSettings | None = None) -> Gallery:
        """Build from an (N, 128) matrix and N person ids (e.g. rows loaded from the store)."""
        gallery = cls(settings)
        given = np.asarray(templates, dtype=np.float32)
        mat = _as_matrix(given) if len(given) else np.zeros((0, EMBEDDING_SIZE), np.float32)
        ids = list(person_ids)
        if len(ids) != len(mat):
            raise GalleryError(f"{len(mat)} templates but {len(ids)} person ids")
        for pid in ids:
            if pid not in gallery._index:
                gallery._index[pid] = len(gallery._people)
                gallery._people.append(pid)
        gallery._templates = mat
        gallery._labels = np.fromiter((gallery._index[p] for p in ids), dtype=np.int32, count=len(ids))
        return gallery

    # -- search --------------------------------------------------------------------------------
    def compared(self, embeddings: npt.ArrayLike) -> Embedding:
        """(M, 128) or (128,) raw embeddings -> (M, 128) float32 in the comparison space (see the module)."""
        rows = _as_matrix(embeddings)
        if self.settings.comparison == "raw":
            return rows
        rows = unit_rows(rows)
        if self._matrix is not None:
            rows = unit_rows(rows @ self._matrix)
        scaled: Embedding = rows * np.float32(COMPARISON_LENGTH)
        return scaled

    def _search_rows(self) -> tuple[Embedding, Embedding, Labels]:
        """(matrix (R, 128) float32, squared norms (R,), person label per row) that probes are compared with."""
        if self._search is None:
            templates = self.compared(self._templates) if len(self) else self._templates
            if self.settings.template_aggregation == "mean" and len(self):
                labels = np.unique(self._labels)
                sums = np.zeros((len(self._people), EMBEDDING_SIZE), dtype=np.float64)
                np.add.at(sums, self._labels, templates)
                counts = np.bincount(self._labels, minlength=len(self._people))
                rows = (sums[labels] / counts[labels, None]).astype(np.float32)
            else:
                labels, rows = self._labels, templates
            self._search = (np.ascontiguousarray(rows), np.einsum("ij,ij->i", rows, rows), labels)
            self._isolations = {}
        return self._search

    def distances(self, embeddings: npt.ArrayLike) -> Embedding:
        """Distances in the comparison space, (M, 128) or (128,) probes x N templates -> (M, N) float32."""
        templates = self.compared(self._templates) if len(self) else self._templates
        return self._distances(self.compared(embeddings), templates, np.einsum("ij,ij->i", templates, templates))

    @staticmethod
    def _distances(embeddings: npt.ArrayLike, rows: Embedding, sq_norms: Embedding) -> Embedding:
        probes = _as_matrix(embeddings)
        sq: Embedding = np.einsum("ij,ij->i", probes, probes)[:, None] + sq_norms[None, :]
        if len(probes) <= 8:
            # einsum's own single-threaded loop: for a few probes a multi-threaded BLAS call
            # costs more in thread wake-ups than the arithmetic (ms on a busy Pi).
            sq -= 2.0 * np.einsum("ij,kj->ki", rows, probes)
        else:
            sq -= 2.0 * (probes @ rows.T)
        np.maximum(sq, 0.0, out=sq)
        return np.sqrt(sq, out=sq)

    def _best_two(self, embeddings: npt.ArrayLike, exclude: int | None = None) -> tuple[int, float, float]:
        """(best person label, its distance, second-best person's distance); several probes are averaged."""
        d, labels = self._person_distances(embeddings, exclude)
        i1 = int(np.argmin(d)) if d.size else -1
        if i1 < 0 or not np.isfinite(d[i1]):
            return -1, float("inf"), float("inf")
        others = np.delete(d, i1)
        others = others[np.isfinite(others)]
        return int(labels[i1]), float(d[i1]), float(others.min()) if others.size else float("inf")

    def _person_distances(self, embeddings: npt.ArrayLike,
                          exclude: int | None = None) -> tuple[Embedding, Labels]:
        """(distance to each enrolled person (P,), their labels (P,)); several probes are averaged.

        A person's distance is to their mean template (template_aggregation "mean") or their
        nearest template ("min"); exclude's is inf.
        """
        rows, sq_norms, labels = self._search_rows()
        d = self._distances(self.compared(embeddings), rows, sq_norms).mean(axis=0)
        if self.settings.template_aggregation != "mean":
            per_person = np.full(len(self._people), np.inf, dtype=np.float32)
            np.minimum.at(per_person, labels, d)
            people = np.unique(labels)
            d, labels = per_person[people], people.astype(np.int32)
        if exclude is not None:
            d = np.where(labels == exclude, np.inf, d).astype(np.float32)
        return d, labels

    def _isolation(self, label: int) -> float:
        """Distance (comparison space) from a person's search rows to the nearest other person's; inf alone.

        Kept per person until the gallery changes: a face at the door asks for the same person again.
        """
        rows, sq_norms, labels = self._search_rows()
        if label not in self._isolations:
            own = labels == label
            d = self._distances(rows[own], rows[~own], sq_norms[~own]) if not own.all() else np.full(1, np.inf)
            self._isolations[label] = float(d.min())
        return self._isolations[label]

    def normalised_distance(self, best: float, label: int, others: Embedding) -> float:
        """The rule's normalised distance of the best person (label, at distance best) given the
        distances to every other enrolled person (P-1,) (see RecognitionSettings.max_normalised_distance);
        nan with only one person enrolled."""
        s = self.settings
        k = min(s.cohort_size, others.size)
        cohort = np.partition(others, k - 1)[:k] if k else others  # the k nearest, unsorted
        if cohort.size == 0 or not np.all(np.isfinite(cohort)):
            return float("nan")
        isolation = self._isolation(label) if s.isolation_weight > 0 else 0.0
        return float(best - s.cohort_weight * cohort.mean() - s.isolation_weight * isolation)

    def normalised_threshold(self) -> float:
        """max_normalised_distance at this gallery's size (gallery_size_slope; inf when the rule is off)."""
        s = self.settings
        if s.max_normalised_distance is None:
            return float("inf")
        _, _, labels = self._search_rows()  # one row per person with "mean"; counted without a sort then
        people = labels.size if s.template_aggregation == "mean" else np.unique(labels).size
        return s.max_normalised_distance + s.gallery_size_slope * float(
            np.log(min(max(people, 1), NORMALISATION_GALLERY) / NORMALISATION_GALLERY))

    def identify(self, embeddings: npt.ArrayLike) -> Match:
        """Who is this? One (128,) embedding or several frames (M, 128) of the same face.

        Rule (calibrated on ../shared/data/faces, see RecognitionSettings): accept the nearest
        person when distance <= max_distance, the normalised distance (the distance less the
        weighted mean distance to the next cohort_size people and the candidate's distance to
        their nearest colleague) is within normalised_threshold(), distance / second-best person's
        distance <= max_ratio and second - best >= min_margin (and, with max_cohort_z set, the
        distance's z-score among the distances to everybody else is at most that); otherwise
        person_id is None.
        """
        if len(self) == 0:
            _as_matrix(embeddings)
            return Match(None, float("inf"), float("inf"), 0.0)
        d, labels = self._person_distances(embeddings)
        i1 = int(np.argmin(d))
        best = float(d[i1])
        label = int(labels[i1])
        others = np.delete(d, i1)
        second = float(others.min()) if others.size else float("inf")
        margin = second - best
        ratio = best / second if second > 0 and np.isfinite(second) else 0.0
        s = self.settings
        accepted = best <= s.max_distance and ratio <= s.max_ratio and margin >= s.min_margin
        if accepted and s.max_normalised_distance is not None:
            normalised = self.normalised_distance(best, label, others)
            accepted = np.isnan(normalised) or normalised <= self.normalised_threshold()
        if accepted and s.max_cohort_z is not None and others.size >= 3:
            spread = float(others.std())
            z = (best - float(others.mean())) / spread if spread > 0 else float("-inf")
            accepted = z <= s.max_cohort_z
        score = match_score(best, s.max_distance) if accepted else 0.0
        candidate = self._people[label]
        return Match(candidate if accepted else None, best, margin, score, candidate)

    def nearest_other_person(self, embeddings: npt.ArrayLike,
                             exclude: PersonId | None = None) -> tuple[PersonId | None, float]:
        """(nearest person other than exclude, distance) for duplicate checks; (None, inf) if none."""
        if len(self) == 0:
            return None, float("inf")
        excl = self._index.get(exclude) if exclude is not None else None
        label, best, _ = self._best_two(embeddings, excl)
        if label < 0:
            return None, float("inf")
        return self._people[label], best

    def is_duplicate(self, embeddings: npt.ArrayLike, exclude: PersonId | None = None) -> tuple[PersonId | None, float]:
        """(other person, distance) when the face is within duplicate_distance of someone else, else (None, d)."""
        pid, dist = self.nearest_other_person(embeddings, exclude)
        if pid is not None and dist <= self.settings.duplicate_distance:
            return pid, dist
        return None, dist
