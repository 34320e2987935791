#!/usr/bin/env bash
# Rebuild the shipped expression model (models/expression_int8.tflite) from FER2013.
#   deploy/build-model.sh [FER2013_DIR] [WORK_DIR]
# Needs the train extra (bash deploy/dev-setup.sh --test). Resumable: run it again with the same
# WORK_DIR after a stop and training continues from the last finished epoch; once training has
# finished it only exports and evaluates. About 30 epochs x 2-4 min on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/fer2013}
WORK=${2:-work-cache/train-main}
.venv/bin/kiosk -v train expressions --data "$DATA/train" --test-data "$DATA/test" \
    --out models/expression_int8.tflite --work-dir "$WORK"
.venv/bin/kiosk evaluate expressions --data "$DATA/test" --faces-cropped
