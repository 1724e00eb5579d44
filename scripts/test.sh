#!/usr/bin/env bash
# The project's test command (README and .ci/run call exactly this). On a fresh Debian/Ubuntu
# machine it installs what it needs, then runs ruff, every test suite except the benchmarks and
# the slow molecule scenarios, and one molecule smoke scenario (the brain role in a systemd
# container under podman; needs root). The other scenarios: tests/ansible/run-molecule.sh.
#   ./scripts/test.sh            # everything CI runs
#   ./scripts/test.sh -k search  # extra arguments go to pytest
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

# podman, runc and debootstrap: the molecule smoke scenario's local systemd container; age: the
# encrypted off-VM backups (tests/backup/test_offsite.py);
# build-essential and cmake: building the llama.cpp server wheel the first time (then cached);
# chromium and chromium-driver: the web page's browser tests (tests/web/test_browser.py, which
# fail under CI without them), driven by Selenium through Debian's driver, nothing downloaded
ensure_system_packages podman runc debootstrap build-essential cmake age chromium chromium-driver
ensure_venv dev

log "installing the test LLM (llama.cpp server + SmolLM2-135M; first build 5-6 min, then cached)"
BRAIN_TEST_GGUF="$(.ci/install-llm.sh)"
export BRAIN_TEST_GGUF

log "installing Ansible tools (requirements-ansible.txt)"
python -m pip install -q -r requirements-ansible.txt

log "ruff"
ruff check .

log "import contracts (lint-imports: laptop and server sides apart, no cycles)"
lint-imports

log "mypy (app/)"
mypy

log "pytest"
python -m pytest -m "not molecule and not bench and not rehearsal" "$@"

if [ $# -eq 0 ]; then
  log "molecule smoke scenario: the brain role (converge, idempotence, verify) in a systemd container"
  python -m pytest -m molecule tests/ansible -k brain
fi
