"""Within-class covariance normalisation (WCCN) of face embeddings, learned from labelled people.

The matrix W (128 x 128 float32) is (S_w + ridge * I)^(-1/2), where S_w is the average
within-person covariance of the embeddings scaled to length 1 (each person's photos around
their own mean, pooled over people with 2+ usable photos). The gallery compares faces as
sqrt(2) * unit(unit(e) @ W) (recognition.comparison: wccn): directions in which one person's
photos vary (pose, light) are shrunk, directions that tell people apart are kept.

`python -m kiosk.evaluation.wccn --data DIR [--half A] [--cache FILE] --out FILE.npy` learns the
matrix from the people of an evaluation folder (people/<Name>/*.jpg; strangers are not used)
and writes it with a .sha256 beside it; the last line on stdout is JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from kiosk.config import RecognitionSettings
from kiosk.errors import KioskError
from kiosk.gallery import unit_rows
from kiosk.vision.embedding import EMBEDDING_SIZE, Embedding

logger = logging.getLogger(__name__)

# Added to the within-class covariance's diagonal before the inverse square root. Unit-length
# dlib embeddings vary within a person by about 1e-3 per direction on average; 0.01 keeps W near
# a plain length normalisation in directions the training people barely vary in. Chosen on
# half A only (repeated 50/50 splits of its people, learned on one part, tuned and measured on
# the other): 0.001 and 0.003 missed more at the same stranger rate, 0.02-0.05 about as many.
DEFAULT_RIDGE = 0.01


def learn_wccn(people: Mapping[str, Sequence[Embedding | None]], ridge: float = DEFAULT_RIDGE) -> Embedding:
    """W (128, 128) float32 from {person: embeddings (128,) or None}; people with < 2 usable photos are skipped."""
    if ridge <= 0:
        raise ValueError("ridge must be positive")
    scatter = np.zeros((EMBEDDING_SIZE, EMBEDDING_SIZE), dtype=np.float64)
    photos = used = 0
    for embeddings in people.values():
        rows = [e for e in embeddings if e is not None]
        if len(rows) < 2:
            continue
        x = unit_rows(np.stack(rows)).astype(np.float64)
        x -= x.mean(axis=0)
        scatter += x.T @ x
        photos += len(x)
        used += 1
    if used < 2:
        raise KioskError(f"WCCN needs 2 or more people with 2+ usable photos each; got {used}")
    covariance = scatter / photos + ridge * np.eye(EMBEDDING_SIZE)
    values, vectors = np.linalg.eigh(covariance)
    w = (vectors * values ** -0.5) @ vectors.T
    logger.info("WCCN learned from %d photos of %d people (ridge %g)", photos, used, ridge)
    return np.ascontiguousarray(w, dtype=np.float32)


def save_matrix(w: Embedding, path: Path) -> str:
    """Write W as .npy plus path + '.sha256' (hex digest and file name); returns the digest."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.asarray(w, dtype=np.float32), allow_pickle=False)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    path.with_name(path.name + ".sha256").write_text(f"{digest}  {path.name}\n")
    return digest


def learn_from_folder(data_dir: Path, out: Path, settings: RecognitionSettings | None = None,
                      half: str | None = None, cache: Path | None = None,
                      ridge: float = DEFAULT_RIDGE) -> tuple[str, int]:
    """Learn W from an evaluation folder's people (optionally one half) and write it to out (+ .sha256).

    Returns (SHA-256 hex digest, people in the folder or half). Embeddings as embed_dataset makes
    them under settings (cache reused); strangers are not used.
    """
    from kiosk.evaluation.faces import embed_dataset

    people, _ = embed_dataset(Path(data_dir), settings or RecognitionSettings(), cache=cache, strangers=False,
                              people_half=half)
    return save_matrix(learn_wccn(people, ridge), out), len(people)


def main(argv: list[str] | None = None) -> int:
    """CLI: learn W from an evaluation folder's people (optionally one half) and write it."""
    parser = argparse.ArgumentParser(prog="python -m kiosk.evaluation.wccn", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder with people/<Name>/*.jpg")
    parser.add_argument("--half", choices=["A", "B"], default=None, help="only this half's people (CRC-32 split)")
    parser.add_argument("--cache", type=Path, default=None, help="embedding cache .npz (as kiosk evaluate faces)")
    parser.add_argument("--ridge", type=float, default=DEFAULT_RIDGE, help="added to the covariance's diagonal")
    parser.add_argument("--out", type=Path, required=True, help="where to write the .npy (and .sha256)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        digest, people = learn_from_folder(args.data, args.out, half=args.half, cache=args.cache, ridge=args.ridge)
    except (KioskError, ValueError, OSError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    sys.stdout.write(json.dumps({"out": str(args.out), "sha256": digest, "people": people,
                                 "half": args.half, "ridge": args.ridge}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
