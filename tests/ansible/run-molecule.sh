#!/usr/bin/env bash
# Run the molecule scenarios of the given roles (default: all), timing each.
#
#   tests/ansible/run-molecule.sh                 # every role
#   tests/ansible/run-molecule.sh brain ollama    # some
#   MOLECULE_CMD=converge tests/ansible/run-molecule.sh brain   # keep the container to poke at
#
# Needs: root, `apt-get install -y podman runc debootstrap`, `pip install -r requirements-ansible.txt`.
# Builds the test image first if it is missing (tests/ansible/build-image.sh).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
export CONTAINERS_CONF="$HERE/containers.conf"
export ANSIBLE_FORCE_COLOR="${ANSIBLE_FORCE_COLOR:-0}"
export PY_COLORS="${PY_COLORS:-0}"

"$HERE/build-image.sh"

roles=("$@")
if [[ ${#roles[@]} -eq 0 ]]; then
  roles=(common brain ollama wireguard collectors)
fi
status=0
summary=()
for role in "${roles[@]}"; do
  start=$(date +%s)
  if (cd "$ROOT/roles/$role" && molecule "${MOLECULE_CMD:-test}"); then
    result=passed
  else
    result=failed
    status=1
  fi
  summary+=("molecule $role: $result in $(( $(date +%s) - start )) s")
done
printf '%s\n' "${summary[@]}"
exit $status
