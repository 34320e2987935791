#!/usr/bin/env bash
# Install (or update) the attendance kiosk on Raspberry Pi OS Bookworm, 64-bit.
# Safe to run again: every step checks first and only acts when something is missing or changed.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: sudo deploy/install-pi.sh [--dry-run] [--with-browser] [--no-start]

Installs the kiosk from this source tree:
  - apt packages: python3-venv python3-dev python3-picamera2 libopenblas0
    (and chromium-browser with --with-browser, for the kiosk's own screen)
  - system user "kiosk" (groups kiosk, video)
  - a venv in /opt/kiosk/venv made with --system-site-packages (for apt's picamera2)
  - the project with its pinned dependencies, then face-recognition with --no-deps
  - /etc/kiosk/kiosk.yaml from deploy/kiosk.example.yaml, only if it does not exist
  - /var/lib/kiosk (database and state), owned by kiosk
  - systemd units kiosk.service and kiosk-web.service, enabled and started
  - `kiosk db upgrade` to create or migrate the database

Options:
  --dry-run       print every action it would take and change nothing (no root needed)
  --with-browser  also install chromium-browser for a full-screen status page
  --no-start      install and enable the services but do not (re)start them
  -h, --help      show this help

Environment (for packaging and tests): KIOSK_PREFIX (/opt/kiosk), KIOSK_ETC (/etc/kiosk),
KIOSK_STATE (/var/lib/kiosk), KIOSK_UNIT_DIR (/etc/systemd/system), KIOSK_OS_RELEASE
(/etc/os-release). The shipped units expect the default paths.
USAGE
}

DRY_RUN=0
WITH_BROWSER=0
START=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --dry-run) DRY_RUN=1 ;;
        --with-browser) WITH_BROWSER=1 ;;
        --no-start) START=0 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "install-pi.sh: unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

SRC_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX="${KIOSK_PREFIX:-/opt/kiosk}"
VENV="$PREFIX/venv"
ETC_DIR="${KIOSK_ETC:-/etc/kiosk}"
STATE_DIR="${KIOSK_STATE:-/var/lib/kiosk}"
UNIT_DIR="${KIOSK_UNIT_DIR:-/etc/systemd/system}"
OS_RELEASE="${KIOSK_OS_RELEASE:-/etc/os-release}"
KIOSK_USER=kiosk
UNITS=(kiosk.service kiosk-web.service)
APT_PACKAGES=(python3-venv python3-dev python3-picamera2 libopenblas0)
FACE_RECOGNITION="face-recognition==1.3.0"
# apt's simplejpeg (used by picamera2) is built for numpy 1; the venv gets numpy 2 (opencv 4.12
# needs it), so install a simplejpeg built for numpy 2 into the venv to shadow it.
SIMPLEJPEG_VERSION="1.9.0"
CHANGED=0
export DEBIAN_FRONTEND=noninteractive

say() { printf '==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() { printf 'install-pi.sh: %s\n' "$*" >&2; exit 1; }

# run CMD...: do it, or with --dry-run only say it would.
run() {
    if [[ $DRY_RUN -eq 1 ]]; then
        printf '    would run:'
    else
        printf '    +'
    fi
    printf ' %q' "$@"
    printf '\n'
    [[ $DRY_RUN -eq 1 ]] || "$@"
}

source_hash() {
    (cd "$SRC_DIR" && find pyproject.toml kiosk -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 |
        LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
}

venv_has() { # venv_has DIST VERSION: is exactly that version importable from the venv?
    [[ -x "$VENV/bin/python" ]] || return 1
    local have
    have="$("$VENV/bin/python" -m pip show "$1" 2>/dev/null | sed -n 's/^Version: //p')" || return 1
    [[ "$have" == "$2" ]]
}

check_platform() {
    say "Checking the platform"
    local codename="" arch
    if [[ -r "$OS_RELEASE" ]]; then
        codename="$(sed -n 's/^VERSION_CODENAME=//p' "$OS_RELEASE" | tr -d '"')"
    fi
    arch="$(uname -m)"
    [[ "$codename" == "bookworm" ]] || warn "made for Raspberry Pi OS Bookworm; this is '${codename:-unknown}'"
    [[ "$arch" == "aarch64" ]] || warn "made for 64-bit Raspberry Pi OS (aarch64); this is $arch"
    [[ -f "$SRC_DIR/pyproject.toml" && -d "$SRC_DIR/kiosk" ]] || die "no kiosk source tree at $SRC_DIR"
    if [[ $DRY_RUN -eq 0 && $EUID -ne 0 ]]; then
        die "must run as root (sudo $0), or try --dry-run"
    fi
}

install_apt_packages() {
    say "APT packages"
    local wanted=("${APT_PACKAGES[@]}") missing=() pkg
    [[ $WITH_BROWSER -eq 1 ]] && wanted+=(chromium-browser)
    for pkg in "${wanted[@]}"; do
        if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
            note "$pkg already installed"
        else
            missing+=("$pkg")
        fi
    done
    if [[ ${#missing[@]} -gt 0 ]]; then
        run apt-get update
        run apt-get install -y --no-install-recommends "${missing[@]}"
    fi
}

create_user() {
    say "System user $KIOSK_USER"
    if ! id -u "$KIOSK_USER" >/dev/null 2>&1; then
        run useradd --system --user-group --groups video --home-dir "$STATE_DIR" --no-create-home \
            --shell /usr/sbin/nologin --comment "Attendance kiosk" "$KIOSK_USER"
    elif ! id -nG "$KIOSK_USER" | tr ' ' '\n' | grep -qx video; then
        run usermod -aG video "$KIOSK_USER"
    else
        note "$KIOSK_USER exists and is in group video"
    fi
}

create_dirs() {
    say "Directories"
    [[ -d "$PREFIX" ]] || run install -d -m 0755 "$PREFIX"
    [[ -d "$ETC_DIR" ]] || run install -d -m 0755 "$ETC_DIR"
    if [[ -d "$STATE_DIR" ]]; then
        note "$STATE_DIR exists"
    else
        run install -d -m 0750 -o "$KIOSK_USER" -g "$KIOSK_USER" "$STATE_DIR"
    fi
}

install_python() {
    say "Python environment in $VENV"
    if [[ -x "$VENV/bin/python" ]]; then
        note "venv exists"
    else
        run python3 -m venv --system-site-packages "$VENV"
    fi
    local hash stamp="$PREFIX/.source-sha256"
    hash="$(source_hash)"
    if [[ -x "$VENV/bin/kiosk" && -f "$stamp" && "$(cat "$stamp")" == "$hash" ]]; then
        note "kiosk from this source tree already installed"
    else
        run "$VENV/bin/python" -m pip install --disable-pip-version-check "$SRC_DIR"
        if [[ $DRY_RUN -eq 1 ]]; then
            printf '    would write: %s\n' "$stamp"
        else
            printf '%s\n' "$hash" >"$stamp"
        fi
        CHANGED=1
    fi
    if venv_has face-recognition 1.3.0; then
        note "face-recognition 1.3.0 installed"
    else
        # It names the source `dlib` (a 15-minute compile); dlib-bin from the pins is the same library.
        run "$VENV/bin/python" -m pip install --disable-pip-version-check --no-deps "$FACE_RECOGNITION"
        CHANGED=1
    fi
    if venv_has simplejpeg "$SIMPLEJPEG_VERSION"; then
        note "simplejpeg $SIMPLEJPEG_VERSION installed"
    else
        run "$VENV/bin/python" -m pip install --disable-pip-version-check "simplejpeg==$SIMPLEJPEG_VERSION"
    fi
}

install_config() {
    say "Configuration $ETC_DIR/kiosk.yaml"
    if [[ -e "$ETC_DIR/kiosk.yaml" ]]; then
        note "exists; left as it is (compare with $SRC_DIR/deploy/kiosk.example.yaml)"
    else
        run install -m 0640 -o root -g "$KIOSK_USER" "$SRC_DIR/deploy/kiosk.example.yaml" "$ETC_DIR/kiosk.yaml"
    fi
}

install_units() {
    say "systemd units"
    local unit units_changed=0
    for unit in "${UNITS[@]}"; do
        if cmp -s "$SRC_DIR/systemd/$unit" "$UNIT_DIR/$unit"; then
            note "$unit up to date"
        else
            run install -m 0644 "$SRC_DIR/systemd/$unit" "$UNIT_DIR/$unit"
            units_changed=1
        fi
    done
    if [[ $units_changed -eq 1 ]]; then
        run systemctl daemon-reload
        CHANGED=1
    fi
}

upgrade_database() {
    say "Database"
    # Runs as the service user so the SQLite file belongs to it; a no-op when already current.
    run runuser -u "$KIOSK_USER" -- env -C "$STATE_DIR" "$VENV/bin/kiosk" --config "$ETC_DIR/kiosk.yaml" db upgrade
}

enable_services() {
    say "Services"
    local unit
    for unit in "${UNITS[@]}"; do
        if systemctl is-enabled --quiet "$unit" 2>/dev/null; then
            note "$unit enabled"
        else
            run systemctl enable "$unit"
        fi
    done
    if [[ $START -eq 0 ]]; then
        note "not starting (--no-start)"
    elif [[ $CHANGED -eq 1 ]]; then
        run systemctl restart "${UNITS[@]}"
    else
        run systemctl start "${UNITS[@]}"
    fi
}

check_camera_stack() {
    [[ $DRY_RUN -eq 1 || ! -x "$VENV/bin/python" ]] && return 0
    say "Checking that picamera2 imports in the venv"
    if "$VENV/bin/python" -c 'import picamera2' 2>/dev/null; then
        note "picamera2 ok"
    else
        warn "picamera2 does not import in $VENV (fine for a USB camera; see python3-picamera2)"
    fi
}

main() {
    [[ $DRY_RUN -eq 1 ]] && say "Dry run: nothing will be changed"
    check_platform
    install_apt_packages
    create_user
    create_dirs
    install_python
    install_config
    install_units
    upgrade_database
    enable_services
    check_camera_stack
    say "Done. Logs: journalctl -u kiosk -u kiosk-web -f ; settings: $ETC_DIR/kiosk.yaml"
    if [[ $WITH_BROWSER -eq 1 ]]; then
        note "For the screen, start chromium-browser --kiosk with the status page of kiosk-web in the desktop autostart."
    fi
}

main
