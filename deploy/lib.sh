# shellcheck shell=bash
# The steps deploy/install-pi.sh and deploy/install-server.sh share; sourced by both, not run.
# The sourcing script defines usage, calls parse_options "$@" (DRY_RUN, START), and sets CHANGED=0,
# SRC_DIR (this source tree), PREFIX, VENV, STATE_DIR, UNIT_DIR, OS_RELEASE and KIOSK_USER.
# shellcheck disable=SC2154  # those variables are assigned by the script that sources this file

FACE_RECOGNITION_VERSION="1.3.0"

say() { printf '==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() { printf '%s: %s\n' "${0##*/}" "$*" >&2; exit 1; }

usage_environment() { # usage_environment LAST_SENTENCE: --help's paragraph on the KIOSK_* variables
    cat <<USAGE
Environment (for packaging and tests): KIOSK_PREFIX (/opt/kiosk), KIOSK_ETC (/etc/kiosk),
KIOSK_STATE (/var/lib/kiosk), KIOSK_UNIT_DIR (/etc/systemd/system), KIOSK_OS_RELEASE
(/etc/os-release). $1
USAGE
}

# parse_options ARG...: DRY_RUN and START from --dry-run and --no-start; -h/--help prints the
# script's usage and exits 0; any other option goes to the script's extra_option function (when
# it has one), which returns 1 for one it does not know either: that stops with exit 2.
parse_options() {
    DRY_RUN=0
    START=1
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --dry-run) DRY_RUN=1 ;;
            --no-start) START=0 ;;
            -h | --help) usage; exit 0 ;;
            *)
                if ! { declare -F extra_option >/dev/null && extra_option "$1"; }; then
                    echo "${0##*/}: unknown option: $1 (see --help)" >&2
                    exit 2
                fi
                ;;
        esac
        shift
    done
}

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

require_root() { # stop unless root or a dry run
    if [[ $DRY_RUN -eq 0 && $EUID -ne 0 ]]; then
        die "must run as root (sudo $0), or try --dry-run"
    fi
}

os_codename() { # VERSION_CODENAME of $OS_RELEASE, empty when unreadable
    if [[ -r "$OS_RELEASE" ]]; then
        sed -n 's/^VERSION_CODENAME=//p' "$OS_RELEASE" | tr -d '"'
    fi
}

require_source_tree() {
    [[ -f "$SRC_DIR/pyproject.toml" && -d "$SRC_DIR/kiosk" ]] || die "no kiosk source tree at $SRC_DIR"
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

install_apt_packages() { # install_apt_packages PKG...: those not installed yet
    say "APT packages"
    local missing=() pkg
    for pkg in "$@"; do
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

create_dirs() { # create_dirs DIR...: each (0755, root) when missing, then STATE_DIR (0750, the kiosk user)
    say "Directories"
    local dir
    for dir in "$@"; do
        [[ -d "$dir" ]] || run install -d -m 0755 "$dir"
    done
    if [[ -d "$STATE_DIR" ]]; then
        note "$STATE_DIR exists"
    else
        run install -d -m 0750 -o "$KIOSK_USER" -g "$KIOSK_USER" "$STATE_DIR"
    fi
}

install_python() { # install_python [VENV_OPTION...]: the venv, this source tree, face-recognition
    say "Python environment in $VENV"
    if [[ -x "$VENV/bin/python" ]]; then
        note "venv exists"
    else
        run python3 -m venv "$@" "$VENV"
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
    if venv_has face-recognition "$FACE_RECOGNITION_VERSION"; then
        note "face-recognition $FACE_RECOGNITION_VERSION installed"
    else
        # It names the source `dlib` (a 15-minute compile); dlib-bin from the pins is the same library.
        run "$VENV/bin/python" -m pip install --disable-pip-version-check --no-deps \
            "face-recognition==$FACE_RECOGNITION_VERSION"
        CHANGED=1
    fi
}

# install_config EXAMPLE TARGET [--restart]: copy the example only when TARGET does not exist;
# with --restart a new config counts as a change (the services restart rather than start).
install_config() {
    say "Configuration $2"
    if [[ -e "$2" ]]; then
        note "exists; left as it is (compare with $1)"
    else
        run install -m 0640 -o root -g "$KIOSK_USER" "$1" "$2"
        [[ "${3:-}" != --restart ]] || CHANGED=1
    fi
}

upgrade_database() { # upgrade_database TITLE CONFIG: `kiosk db upgrade` as the service user (a no-op when current)
    say "$1"
    run runuser -u "$KIOSK_USER" -- env -C "$STATE_DIR" "$VENV/bin/kiosk" --config "$2" db upgrade
}

install_units() { # install_units TITLE UNIT...: copy the changed ones from systemd/, then reload systemd
    say "$1"
    shift
    local unit units_changed=0
    for unit in "$@"; do
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

enable_services() { # enable_services TITLE UNIT...: enable each; restart after a change, else start
    say "$1"
    shift
    local unit
    for unit in "$@"; do
        if systemctl is-enabled --quiet "$unit" 2>/dev/null; then
            note "$unit enabled"
        else
            run systemctl enable "$unit"
        fi
    done
    if [[ $START -eq 0 ]]; then
        note "not starting (--no-start)"
    elif [[ $CHANGED -eq 1 ]]; then
        run systemctl restart "$@"
    else
        run systemctl start "$@"
    fi
}
