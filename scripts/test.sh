#!/usr/bin/env bash
# The project's test command (README and .ci/run call exactly this). On a fresh Debian/Ubuntu
# machine it installs what it needs, then runs ruff and every test suite except the slow
# molecule scenarios and benchmarks (their own commands are in README.md).
#   ./scripts/test.sh            # everything CI runs
#   ./scripts/test.sh -k search  # extra arguments go to pytest
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_system_packages
ensure_venv dev

log "installing the test LLM (llama.cpp server + SmolLM2-135M; first build 5-6 min, then cached)"
BRAIN_TEST_GGUF="$(.ci/install-llm.sh)"
export BRAIN_TEST_GGUF

log "installing Ansible tools (requirements-ansible.txt)"
python -m pip install -q -r requirements-ansible.txt

log "ruff"
ruff check .

log "pytest"
python -m pytest -m "not molecule and not bench" "$@"
