"""`kiosk train embedder` (python -m kiosk.training.dlib_embedder): convert the .dat, export, measure."""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from kiosk.training.dlib_embedder.agreement import identity_agreement
from kiosk.training.dlib_embedder.dat_reader import read_dlib_net
from kiosk.training.dlib_embedder.keras_net import build_keras
from kiosk.training.dlib_embedder.measure import (
    default_dat_path,
    distance_stats,
    extract_chips,
    paired_timing,
    tflite_embed,
)
from kiosk.training.dlib_embedder.tflite_export import export_tflite

logger = logging.getLogger(__name__)

DESCRIPTION = "dlib's 128-d face embedder (ResNet `dlib_face_recognition_resnet_model_v1.dat`) as a TFLite twin."


def _face_photos(root: Path, limit: int) -> list[Path]:
    people = sorted(p for p in (root / "people").iterdir() if p.is_dir())
    paths: list[Path] = []
    for person in people:  # one photo per person first, then more, so the set spans people
        photos = sorted(person.glob("*.jpg"))
        if photos:
            paths.append(photos[0])
    strangers = sorted((root / "strangers").glob("*.jpg"))
    paths += strangers[: max(0, limit - len(paths))]
    return paths[:limit]


def main(argv: list[str] | None = None, prog: str = "python -m kiosk.training.dlib_embedder") -> int:
    """CLI: convert the dlib .dat to .tflite and measure it against dlib on face chips."""
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    parser.add_argument("--dat", type=Path, default=None, help="dlib .dat (default: face_recognition_models')")
    parser.add_argument("--out-dir", type=Path, default=Path("work-cache/embedder"))
    parser.add_argument("--precision", action="append", choices=["f32", "f16", "dyn8", "int8"],
                        help="repeatable; default f32 and f16")
    parser.add_argument("--faces", type=Path, default=None, help="faces folder (people/, strangers/) to measure on")
    parser.add_argument("--limit", type=int, default=400, help="photos to measure on")
    parser.add_argument("--calibration", type=int, default=200, help="chips for int8 calibration (not measured on)")
    parser.add_argument("--agreement", type=int, default=0,
                        help="also compare the door's decisions, dlib against the shipped-precision twin, on this many people")
    parser.add_argument("--report", type=Path, default=None, help="write the measurements as JSON here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    precisions = args.precision or ["f32", "f16"]
    dat = args.dat or default_dat_path()
    t0 = time.perf_counter()
    net = read_dlib_net(dat)
    print(f"read {dat.name}: {len(net.layers)} layers ({net.count('con')} con, {net.count('affine')} affine, "
          f"{net.count('fc')} fc), {net.num_params():,} parameters, {time.perf_counter() - t0:.1f} s")
    model = build_keras(net)
    report: dict[str, Any] = {"dat": str(dat), "dat_sha256": hashlib.sha256(dat.read_bytes()).hexdigest(),
                              "layers": len(net.layers), "parameters": net.num_params(), "models": {}}
    chips = desc = None
    calib = None
    if args.faces is not None:
        paths = _face_photos(args.faces, args.limit + args.calibration)
        chips, desc, names = extract_chips(paths, args.out_dir / f"chips_{args.limit + args.calibration}.npz")
        calib, chips, desc = chips[-args.calibration:], chips[:-args.calibration], desc[:-args.calibration]
        keras_emb = model.predict(chips.astype(np.float32), batch_size=32, verbose=0)
        report["keras_vs_dlib"] = distance_stats(keras_emb, desc)
        print(f"keras twin vs dlib on {len(chips)} chips: {report['keras_vs_dlib']}")
    for precision in precisions:
        out = args.out_dir / f"face_embedder_{precision}.tflite"
        export_tflite(model, out, precision, calib)
        entry: dict[str, Any] = {"file": str(out), "bytes": out.stat().st_size}
        if chips is not None and desc is not None:
            emb, ms = tflite_embed(out, chips)
            entry.update(distance_stats(emb, desc))
            entry["ms_per_face_1_thread"] = ms
        report["models"][precision] = entry
        print(f"{precision}: {json.dumps(entry)}")
    if chips is not None:
        model_files = {p: Path(e["file"]) for p, e in report["models"].items()}
        report["median_ms_per_face_paired"] = paired_timing(model_files, chips)
        print("median ms per face, dlib and each twin alternating (LiteRT 1 thread): "
              + json.dumps({k: round(v, 2) for k, v in report["median_ms_per_face_paired"].items()}))
    if args.faces is not None and args.agreement > 0:
        model = args.out_dir / "face_embedder_f16.tflite"
        if "f16" not in report["models"]:
            raise SystemExit("--agreement needs --precision f16")
        report["agreement"] = identity_agreement(args.faces, args.agreement, model=model,
                                                 cache=args.out_dir / f"agreement_{args.agreement}.npz")
        print(f"door decisions, dlib against litert f16: {json.dumps(report['agreement'])}")
    if args.report:
        args.report.write_text(json.dumps(report, indent=2) + "\n")
    return 0
