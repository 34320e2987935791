#!/usr/bin/env bash
# Set up a development/demo environment in .venv (idempotent).
#   bash deploy/dev-setup.sh          runtime only (enough for `kiosk demo`)
#   bash deploy/dev-setup.sh --test   also pytest, the train extra (PyTorch, TensorFlow) and, as root on
#                                     Debian, chromium + chromedriver + systemd + shellcheck + postgresql
#                                     for the browser, unit-file, script and PostgreSQL tests
# face-recognition is installed with --no-deps: it names the source `dlib` package (15 minutes
# to compile); dlib-bin is the same library prebuilt.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
WITH_TEST=0
[[ "${1:-}" == "--test" ]] && WITH_TEST=1

if [[ $WITH_TEST == 1 && $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    missing=()
    command -v chromium >/dev/null || missing+=(chromium)
    command -v chromedriver >/dev/null || missing+=(chromium-driver)
    command -v systemd-analyze >/dev/null || missing+=(systemd)
    command -v shellcheck >/dev/null || missing+=(shellcheck)
    # PostgreSQL's server binaries (not on PATH on Debian) for the throw-away cluster of tests/pg_server.py
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
    if ((${#missing[@]})); then
        echo "installing ${missing[*]} (apt)" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
fi

[[ -x .venv/bin/python ]] || "$PYTHON" -m venv .venv
pip=(.venv/bin/python -m pip install -q --disable-pip-version-check)
"${pip[@]}" "setuptools>=70,<82" wheel
extras=""
[[ $WITH_TEST == 1 ]] && extras="[train,test]"
"${pip[@]}" -e ".${extras}"
"${pip[@]}" --no-deps face-recognition==1.3.0
.venv/bin/python -c "import face_recognition, ai_edge_litert, cv2" 2>/dev/null \
    || { echo "setup failed: face_recognition / LiteRT / OpenCV do not import" >&2; exit 1; }
echo "ready: .venv (activate with . .venv/bin/activate)" >&2
