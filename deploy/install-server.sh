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

USAGE
    usage_environment "The shipped unit expects the default paths."
}

SRC_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Every path below is absolute; from / the postgres and kiosk users can always enter the working
# directory (from /root, PostgreSQL's programs would warn that they cannot).
cd /
# shellcheck source=lib.sh
source "$SRC_DIR/deploy/lib.sh"
parse_options "$@"

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
CHANGED=0
export DEBIAN_FRONTEND=noninteractive

# as_postgres CMD...: run a PostgreSQL client program as the database superuser (peer login).
as_postgres() { run runuser -u postgres -- "$@"; }

# pg_answer SQL: the one value SQL returns, asked as the postgres user; empty when PostgreSQL is
# not installed, not running or (in a dry run without root) cannot be asked. Changes nothing.
pg_answer() {
    runuser -u postgres -- psql -X -q -t -A -d postgres -c "$1" 2>/dev/null || true
}

check_platform() {
    require_root
    say "Checking the platform"
    local codename
    codename="$(os_codename)"
    [[ "$codename" == "bookworm" ]] || warn "made for Debian 12 (bookworm); this is '${codename:-unknown}'"
    require_source_tree
    [[ -f "$SRC_DIR/deploy/kiosk-central.example.yaml" && -f "$SRC_DIR/systemd/$UNIT" ]] ||
        die "no deploy/kiosk-central.example.yaml or systemd/$UNIT in $SRC_DIR"
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

main() {
    [[ $DRY_RUN -eq 1 ]] && say "Dry run: nothing will be changed"
    check_platform
    install_apt_packages "${APT_PACKAGES[@]}"
    start_postgres
    create_user
    create_database
    create_dirs "$PREFIX" "$ETC_DIR" "$UNIT_DIR"
    # shellcheck disable=SC2119  # a plain venv: no apt Python packages on a server
    install_python
    install_config "$SRC_DIR/deploy/kiosk-central.example.yaml" "$CONFIG" --restart
    # As the service user: peer authentication maps it to the role kiosk.
    upgrade_database "Database schema" "$CONFIG"
    install_units "systemd unit" "$UNIT"
    enable_services "Service" "$UNIT"
    say "Done. Logs: journalctl -u kiosk-central -f ; settings: $CONFIG"
    note "The web app listens where $CONFIG's web section says (127.0.0.1:8080 as shipped):"
    note "put an HTTPS reverse proxy in front of it for the doors and browsers (docs/central.md)."
    note "First admin: runuser -u $KIOSK_USER -- $VENV/bin/kiosk --config $CONFIG users add NAME --role admin"
    note "A door: runuser -u $KIOSK_USER -- $VENV/bin/kiosk --config $CONFIG doors add \"Main entrance\" --site NAME"
}

main
