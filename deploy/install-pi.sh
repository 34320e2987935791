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

USAGE
    usage_environment "The shipped units expect the default paths."
}

SRC_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=lib.sh
source "$SRC_DIR/deploy/lib.sh"

WITH_BROWSER=0
extra_option() { # the options only a Pi has
    case "$1" in
        --with-browser) WITH_BROWSER=1 ;;
        *) return 1 ;;
    esac
}
parse_options "$@"

PREFIX="${KIOSK_PREFIX:-/opt/kiosk}"
VENV="$PREFIX/venv"
ETC_DIR="${KIOSK_ETC:-/etc/kiosk}"
STATE_DIR="${KIOSK_STATE:-/var/lib/kiosk}"
UNIT_DIR="${KIOSK_UNIT_DIR:-/etc/systemd/system}"
OS_RELEASE="${KIOSK_OS_RELEASE:-/etc/os-release}"
KIOSK_USER=kiosk
UNITS=(kiosk.service kiosk-web.service)
APT_PACKAGES=(python3-venv python3-dev python3-picamera2 libopenblas0)
# apt's simplejpeg (used by picamera2) is built for numpy 1; the venv gets numpy 2 (opencv 4.12
# needs it), so install a simplejpeg built for numpy 2 into the venv to shadow it.
SIMPLEJPEG_VERSION="1.9.0"
CHANGED=0
export DEBIAN_FRONTEND=noninteractive

check_platform() {
    say "Checking the platform"
    local codename arch
    codename="$(os_codename)"
    arch="$(uname -m)"
    [[ "$codename" == "bookworm" ]] || warn "made for Raspberry Pi OS Bookworm; this is '${codename:-unknown}'"
    [[ "$arch" == "aarch64" ]] || warn "made for 64-bit Raspberry Pi OS (aarch64); this is $arch"
    require_source_tree
    require_root
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

install_simplejpeg() {
    if venv_has simplejpeg "$SIMPLEJPEG_VERSION"; then
        note "simplejpeg $SIMPLEJPEG_VERSION installed"
    else
        run "$VENV/bin/python" -m pip install --disable-pip-version-check "simplejpeg==$SIMPLEJPEG_VERSION"
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
    local packages=("${APT_PACKAGES[@]}")
    [[ $WITH_BROWSER -eq 1 ]] && packages+=(chromium-browser)
    install_apt_packages "${packages[@]}"
    create_user
    create_dirs "$PREFIX" "$ETC_DIR"
    install_python --system-site-packages  # for apt's picamera2
    install_simplejpeg
    install_config "$SRC_DIR/deploy/kiosk.example.yaml" "$ETC_DIR/kiosk.yaml"
    install_units "systemd units" "${UNITS[@]}"
    # Runs as the service user so the SQLite file belongs to it.
    upgrade_database "Database" "$ETC_DIR/kiosk.yaml"
    enable_services "Services" "${UNITS[@]}"
    check_camera_stack
    say "Done. Logs: journalctl -u kiosk -u kiosk-web -f ; settings: $ETC_DIR/kiosk.yaml"
    if [[ $WITH_BROWSER -eq 1 ]]; then
        note "For the screen, start chromium-browser --kiosk with the status page of kiosk-web in the desktop autostart."
    fi
}

main
