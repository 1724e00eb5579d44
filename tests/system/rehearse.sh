#!/usr/bin/env bash
# The production rehearsal (issue 15): boots brain, gpu and laptop hosts as systemd containers
# under podman on a network made for the run, runs the real site.yml against them over SSH, then
# collects, searches and asks from the laptop, re-runs site.yml (changed=0) and checks what must
# stay closed. Needs root. About 15-20 minutes on 2 cores with warm caches (first run longer:
# the test image and the llama.cpp wheel are built once).
#   tests/system/rehearse.sh                       # everything
#   BRAIN_REHEARSAL_KEEP=1 tests/system/rehearse.sh  # keep the containers to look around
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
cd "$ROOT"

ensure_system_packages podman runc debootstrap build-essential cmake openssh-client
ensure_venv dev
BRAIN_TEST_GGUF="$(.ci/install-llm.sh)"
export BRAIN_TEST_GGUF
python -m pip install -q -r requirements-ansible.txt

start=$SECONDS
python -m pytest -m rehearsal tests/system -v -s -p no:cacheprovider "$@"
log "rehearsal passed in $((SECONDS - start)) s"
