#!/usr/bin/env bash
# The project's test command (README and .ci/run call exactly this). On a fresh Debian/Ubuntu
# machine it installs what it needs, then runs ruff, the import contracts, mypy and every test
# suite except the slow ones, which have their own commands (README's table, with their times):
# the molecule scenarios (tests/ansible/run-molecule.sh), the production rehearsal
# (tests/system/rehearse.sh) and the benchmarks (bench/). The brain role's molecule scenario ran
# here as a smoke test until it took 733-840 s of a 1,778 s CI run whose budget is 1,800 s.
#   ./scripts/test.sh            # everything CI runs
#   ./scripts/test.sh -k search  # extra arguments go to pytest
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

# age: the encrypted off-VM backups (tests/backup/test_offsite.py); caddy: `caddy validate` of the
# brain role's rendered Caddyfiles (tests/ansible/test_playbooks.py);
# build-essential and cmake: building the llama.cpp server wheel the first time (then cached);
# chromium and chromium-driver: the web page's browser tests (tests/web/test_browser.py, which
# fail under CI without them), driven by Selenium through Debian's driver, nothing downloaded
ensure_system_packages build-essential cmake age caddy chromium chromium-driver
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
