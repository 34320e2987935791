#!/usr/bin/env bash
# Rebuild the shipped expression model (models/expression_int8.tflite) from FER2013.
#   deploy/build-model.sh [FER2013_DIR] [WORK_DIR]
# Needs the train extra (bash deploy/dev-setup.sh --test). Training runs in stages (one per
# working session on 2 CPU cores): each later stage starts from the int8 model of the stage
# before (--init-from) with a fresh warm-up and cosine schedule. Every stage is resumable: run the
# script again with the same WORK_DIR after a stop and it continues from the last finished epoch;
# finished stages only re-export. About 2.5 min an epoch on 2 cores (PyTorch), seconds on a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/fer2013}
WORK=${2:-work-cache/build-model}
KIOSK=${KIOSK:-.venv/bin/kiosk}  # the kiosk command, and where the result goes (tests change both)
MODELS=${MODELS:-models}
# epochs:peak learning rate[:distill] of each stage, in order (models/README.md says which produced the
# shipped model); ":distill" mixes the stage before's scores into the targets (--distill-from)
STAGES=("30:2e-3" "32:1e-3" "36:1e-3")

previous=""
for i in "${!STAGES[@]}"; do
    IFS=: read -r epochs rate distill <<< "${STAGES[$i]}"
    out="$WORK/stage$((i + 1))/expression_int8.tflite"
    args=(--data "$DATA/train" --out "$out" --work-dir "$WORK/stage$((i + 1))-work"
          --epochs "$epochs" --learning-rate "$rate")
    [[ -n $previous ]] && args+=(--init-from "$previous")
    [[ ${distill:-} == distill ]] && args+=(--distill-from "$previous")
    [[ $i == $((${#STAGES[@]} - 1)) ]] && args+=(--test-data "$DATA/test")
    echo "stage $((i + 1)): ${args[*]}" >&2
    "$KIOSK" -v train expressions "${args[@]}"
    previous=$out
done
cp "$previous" "$MODELS/expression_int8.tflite"
cp "$previous.sha256" "$MODELS/expression_int8.tflite.sha256"
cp "$(dirname "$previous")"/expression_int8.report.json "$(dirname "$previous")"/confusion_*.png "$MODELS/"
"$KIOSK" evaluate expressions --data "$DATA/test" --faces-cropped
