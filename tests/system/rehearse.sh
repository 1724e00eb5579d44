#!/usr/bin/env bash
# The production rehearsal (issue 15): boots brain, gpu and laptop hosts as systemd containers
# under podman on a network made for the run, runs the real site.yml against them over SSH, then
# collects, searches and asks from the laptop, re-runs site.yml (changed=0), backs the brain up to
# a bucket, replaces the brain host and restores it from the bucket, and checks what must stay
# closed. Needs root. README's command table has the measured time (first run longer: the test
# image and the llama.cpp wheel are built once; apt and pip caches in /var/cache/brain-molecule).
#   tests/system/rehearse.sh                       # everything
#   BRAIN_REHEARSAL_KEEP=1 tests/system/rehearse.sh  # keep the containers to look around
# An active virtualenv ($VIRTUAL_ENV) is used as it is: a run from a worktree of a commit with the
# main checkout's venv must not re-point that venv's editable install at the worktree (the hosts
# get the worktree's code anyway: the brain role builds its wheel from this checkout).
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
cd "$ROOT"

ensure_system_packages podman runc debootstrap build-essential cmake openssh-client age
if [ -z "${VIRTUAL_ENV:-}" ]; then ensure_venv dev; fi
BRAIN_TEST_GGUF="$(.ci/install-llm.sh)"
export BRAIN_TEST_GGUF
python -m pip install -q -r requirements-ansible.txt

start=$SECONDS
python -m pytest -m rehearsal tests/system -v -s -p no:cacheprovider "$@"
log "rehearsal passed in $((SECONDS - start)) s"
