#!/usr/bin/env bash
# Rebuild the shipped face embedder (models/face_embedder_f16.tflite): dlib's CC0 ResNet
# (face_recognition_models' dlib_face_recognition_resnet_model_v1.dat) read by our converter
# (kiosk/training/dlib_embedder/), rebuilt in tf.keras and exported for LiteRT.
#   deploy/build-embedder.sh [FACES_DIR] [WORK_DIR]
# Needs the train extra (bash deploy/dev-setup.sh --test). With FACES_DIR (people/, strangers/)
# it also measures every precision against dlib on face chips (first run extracts and caches
# the chips: ~5 min on 2 cores), builds the int8 variants (not shipped), compares the door's
# decisions with dlib's on 40 people (~3 min the first time, cached) and writes the figures to
# models/face_embedder.report.json (models/EMBEDDER.md quotes them).
set -euo pipefail
cd "$(dirname "$0")/.."
FACES=${1:-../shared/data/faces}
WORK=${2:-work-cache/embedder}
PYTHON=${PYTHON:-.venv/bin/python}
MODELS=${MODELS:-models}
args=(--out-dir "$WORK" --precision f32 --precision f16 --precision dyn8 --report "$WORK/embedder.report.json")
if [[ -d $FACES ]]; then
    args+=(--faces "$FACES" --limit 400 --calibration 200 --precision int8 --agreement 40)
else
    echo "no faces folder at $FACES: converting without measuring (no int8)" >&2
fi
"$PYTHON" -m kiosk.training.dlib_embedder "${args[@]}"
cp "$WORK/face_embedder_f16.tflite" "$MODELS/face_embedder_f16.tflite"
cp "$WORK/face_embedder_f16.tflite.sha256" "$MODELS/face_embedder_f16.tflite.sha256"
if [[ -d $FACES ]]; then cp "$WORK/embedder.report.json" "$MODELS/face_embedder.report.json"; fi
