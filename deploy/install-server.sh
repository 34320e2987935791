#!/usr/bin/env bash
# Install (or update) the attendance kiosk's central server on Debian 12 (bookworm).
# Safe to run again: every step checks first and only acts when something is missing or changed.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: sudo deploy/install-server.sh [--dry-run] [--no-start]

Installs the central server (role: central, docs/central.md) from this source tree:
  - apt packages: postgresql python3-venv
  - PostgreSQL running (systemctl enable --now postgresql)
  - system user "kiosk" (group kiosk)
  - PostgreSQL role "kiosk" and database "kiosk" (owned by it, UTF-8); the role has no
    password: the system user kiosk logs in over the Unix socket by peer authentication
  - a venv in /opt/kiosk/venv with the project and its pinned dependencies (psycopg included),
    then face-recognition with --no-deps
  - /etc/kiosk/central.yaml from deploy/kiosk-central.example.yaml, only if it does not exist
  - /var/lib/kiosk (the web app's key), owned by kiosk
  - `kiosk db upgrade` as the kiosk user, to create or migrate the schema
  - systemd unit kiosk-central.service (`kiosk serve`), enabled and started

Options:
  --dry-run   print every action it would take and change nothing (no root needed)
  --no-start  install and enable the service but do not (re)start it
  -h, --help  show this help

Environment (for packaging and tests): KIOSK_PREFIX (/opt/kiosk), KIOSK_ETC (/etc/kiosk),
KIOSK_STATE (/var/lib/kiosk), KIOSK_UNIT_DIR (/etc/systemd/system), KIOSK_OS_RELEASE
(/etc/os-release). The shipped unit expects the default paths.
USAGE
}

DRY_RUN=0
START=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --dry-run) DRY_RUN=1 ;;
        --no-start) START=0 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "install-server.sh: unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

SRC_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Every path below is absolute; from / the postgres and kiosk users can always enter the working
# directory (from /root, PostgreSQL's programs would warn that they cannot).
cd /
PREFIX="${KIOSK_PREFIX:-/opt/kiosk}"
VENV="$PREFIX/venv"
ETC_DIR="${KIOSK_ETC:-/etc/kiosk}"
CONFIG="$ETC_DIR/central.yaml"
STATE_DIR="${KIOSK_STATE:-/var/lib/kiosk}"
UNIT_DIR="${KIOSK_UNIT_DIR:-/etc/systemd/system}"
OS_RELEASE="${KIOSK_OS_RELEASE:-/etc/os-release}"
KIOSK_USER=kiosk
DB_ROLE=kiosk
DB_NAME=kiosk
UNIT=kiosk-central.service
APT_PACKAGES=(postgresql python3-venv)
FACE_RECOGNITION="face-recognition==1.3.0"
CHANGED=0
export DEBIAN_FRONTEND=noninteractive

say() { printf '==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() { printf 'install-server.sh: %s\n' "$*" >&2; exit 1; }

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

# as_postgres CMD...: run a PostgreSQL client program as the database superuser (peer login).
as_postgres() { run runuser -u postgres -- "$@"; }

# pg_answer SQL: the one value SQL returns, asked as the postgres user; empty when PostgreSQL is
# not installed, not running or (in a dry run without root) cannot be asked. Changes nothing.
pg_answer() {
    runuser -u postgres -- psql -X -q -t -A -d postgres -c "$1" 2>/dev/null || true
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
    if [[ $DRY_RUN -eq 0 && $EUID -ne 0 ]]; then
        die "must run as root (sudo $0), or try --dry-run"
    fi
    say "Checking the platform"
    local codename=""
    if [[ -r "$OS_RELEASE" ]]; then
        codename="$(sed -n 's/^VERSION_CODENAME=//p' "$OS_RELEASE" | tr -d '"')"
    fi
    [[ "$codename" == "bookworm" ]] || warn "made for Debian 12 (bookworm); this is '${codename:-unknown}'"
    [[ -f "$SRC_DIR/pyproject.toml" && -d "$SRC_DIR/kiosk" ]] || die "no kiosk source tree at $SRC_DIR"
    [[ -f "$SRC_DIR/deploy/kiosk-central.example.yaml" && -f "$SRC_DIR/systemd/$UNIT" ]] ||
        die "no deploy/kiosk-central.example.yaml or systemd/$UNIT in $SRC_DIR"
}

install_apt_packages() {
    say "APT packages"
    local missing=() pkg
    for pkg in "${APT_PACKAGES[@]}"; do
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

start_postgres() {
    say "PostgreSQL server"
    if systemctl is-enabled --quiet postgresql.service 2>/dev/null &&
        systemctl is-active --quiet postgresql.service 2>/dev/null; then
        note "postgresql.service enabled and running"
    else
        run systemctl enable --now postgresql.service
    fi
    if [[ "$(pg_answer 'SELECT 1')" == 1 ]]; then
        note "PostgreSQL answers on its Unix socket"
    elif [[ $DRY_RUN -eq 1 ]]; then
        note "PostgreSQL does not answer (yet): the role and database below are assumed missing"
    else
        die "PostgreSQL does not answer on /run/postgresql: see pg_lsclusters (no cluster? pg_createcluster 15 main --start) and journalctl -u postgresql@15-main"
    fi
}

create_user() {
    say "System user $KIOSK_USER"
    if id -u "$KIOSK_USER" >/dev/null 2>&1; then
        note "$KIOSK_USER exists"
    else
        run useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
            --shell /usr/sbin/nologin --comment "Attendance kiosk central" "$KIOSK_USER"
    fi
}

create_database() {
    say "PostgreSQL role $DB_ROLE and database $DB_NAME"
    if [[ "$(pg_answer "SELECT 1 FROM pg_roles WHERE rolname = '$DB_ROLE'")" == 1 ]]; then
        note "role $DB_ROLE exists"
    else
        # LOGIN without a password: only peer authentication over the socket lets it in.
        as_postgres createuser --no-superuser --no-createdb --no-createrole "$DB_ROLE"
    fi
    if [[ "$(pg_answer "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" == 1 ]]; then
        note "database $DB_NAME exists"
    else
        # C.UTF-8: text sorts by code point, as on the doors' SQLite (BINARY collation).
        as_postgres createdb --owner="$DB_ROLE" --encoding=UTF8 --locale=C.UTF-8 --template=template0 "$DB_NAME"
    fi
}

create_dirs() {
    say "Directories"
    [[ -d "$PREFIX" ]] || run install -d -m 0755 "$PREFIX"
    [[ -d "$ETC_DIR" ]] || run install -d -m 0755 "$ETC_DIR"
    [[ -d "$UNIT_DIR" ]] || run install -d -m 0755 "$UNIT_DIR"
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
        run python3 -m venv "$VENV"
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
}

install_config() {
    say "Configuration $CONFIG"
    if [[ -e "$CONFIG" ]]; then
        note "exists; left as it is (compare with $SRC_DIR/deploy/kiosk-central.example.yaml)"
    else
        run install -m 0640 -o root -g "$KIOSK_USER" "$SRC_DIR/deploy/kiosk-central.example.yaml" "$CONFIG"
        CHANGED=1
    fi
}

upgrade_database() {
    say "Database schema"
    # As the service user: peer authentication maps it to the role kiosk. A no-op when current.
    run runuser -u "$KIOSK_USER" -- env -C "$STATE_DIR" "$VENV/bin/kiosk" --config "$CONFIG" db upgrade
}

install_unit() {
    say "systemd unit"
    if cmp -s "$SRC_DIR/systemd/$UNIT" "$UNIT_DIR/$UNIT"; then
        note "$UNIT up to date"
    else
        run install -m 0644 "$SRC_DIR/systemd/$UNIT" "$UNIT_DIR/$UNIT"
        run systemctl daemon-reload
        CHANGED=1
    fi
}

enable_service() {
    say "Service"
    if systemctl is-enabled --quiet "$UNIT" 2>/dev/null; then
        note "$UNIT enabled"
    else
        run systemctl enable "$UNIT"
    fi
    if [[ $START -eq 0 ]]; then
        note "not starting (--no-start)"
    elif [[ $CHANGED -eq 1 ]]; then
        run systemctl restart "$UNIT"
    else
        run systemctl start "$UNIT"
    fi
}

main() {
    [[ $DRY_RUN -eq 1 ]] && say "Dry run: nothing will be changed"
    check_platform
    install_apt_packages
    start_postgres
    create_user
    create_database
    create_dirs
    install_python
    install_config
    upgrade_database
    install_unit
    enable_service
    say "Done. Logs: journalctl -u kiosk-central -f ; settings: $CONFIG"
    note "The web app listens where $CONFIG's web section says (127.0.0.1:8080 as shipped):"
    note "put an HTTPS reverse proxy in front of it for the doors and browsers (docs/central.md)."
    note "First admin: runuser -u $KIOSK_USER -- $VENV/bin/kiosk --config $CONFIG users add NAME --role admin"
    note "A door: runuser -u $KIOSK_USER -- $VENV/bin/kiosk --config $CONFIG doors add \"Main entrance\" --site NAME"
}

main
