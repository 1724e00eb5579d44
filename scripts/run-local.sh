#!/usr/bin/env bash
# Run the brain on this machine on its embedded defaults: SQLite + the local embedding model, no
# cloud account, no key. Sets up .venv, starts brain-api (gunicorn) on 127.0.0.1, remembers this
# repository's own docs and code through the files collector, prints curl lines to try, and keeps
# serving until Ctrl-C. Everything it writes stays in .brain-local/.
#   ./scripts/run-local.sh              # port 8000
#   BRAIN_PORT=8100 ./scripts/run-local.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_system_packages
ensure_venv runtime

LOCAL="$ROOT/.brain-local"
mkdir -p "$LOCAL"
chmod 700 "$LOCAL"
if [ ! -s "$LOCAL/token" ]; then
  (umask 077; brain token new 2>/dev/null > "$LOCAL/token")
fi
TOKEN="$(cat "$LOCAL/token")"
PORT="${BRAIN_PORT:-8000}"
URL="http://127.0.0.1:$PORT"

# server and collector settings, all local to .brain-local (your real ~/.config/brain is not touched)
export BRAIN_DB="$LOCAL/brain.db" BRAIN_API_TOKENS="$TOKEN" BRAIN_SERVER_PORT="$PORT" BRAIN_SERVER_HOST=127.0.0.1
export BRAIN_API_URL="$URL" BRAIN_TOKEN="$TOKEN"
export XDG_CONFIG_HOME="$LOCAL/config" XDG_STATE_HOME="$LOCAL/state" XDG_DATA_HOME="$LOCAL/data"

log "starting brain-api and its embedding worker on $URL (log: $LOCAL/server.log)"
brain serve > "$LOCAL/server.log" 2>&1 &
SERVER=$!
stop_server() { kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true; }
trap stop_server EXIT
trap 'exit 130' INT TERM
for _ in $(seq 1 100); do
  curl -fsS "$URL/healthz" >/dev/null 2>&1 && break
  kill -0 $SERVER 2>/dev/null || { cat "$LOCAL/server.log" >&2; die "brain-api did not start"; }
  sleep 0.3
done

log "remembering this repository's docs/ and app/ (files collector; stored at once, vectors follow)"
BRAIN_COLLECT_FILES_ROOTS="$ROOT/docs,$ROOT/app" brain collect files

cat <<EOF_HELP

brain-api is running at $URL with the local embedding model.

  The web page:  $URL/   (sign in with the token in .brain-local/token)

Or try:

  export TOKEN=\$(cat .brain-local/token)
  curl -s -H "Authorization: Bearer \$TOKEN" '$URL/api/v1/search?q=how+are+secrets+redacted&k=3' | python3 -m json.tool
  curl -s -H "Authorization: Bearer \$TOKEN" '$URL/api/v1/stats' | python3 -m json.tool
  curl -s -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' \\
       -d '{"items":[{"id":"note:hello","source":"note","title":"Hello","content":"My first memory"}]}' \\
       '$URL/api/v1/items'

or the CLI:  . .venv/bin/activate && BRAIN_API_URL=$URL BRAIN_TOKEN=\$TOKEN brain search "vector index"
(ask needs an LLM: see README, "Ask".)

Search works now (BM25 at once; meaning-based results join as the vectors arrive).
Following the embedding backlog below: Ctrl-C stops following and leaves the server running;
a second Ctrl-C stops the server.
EOF_HELP
trap 'true' INT  # the first Ctrl-C ends only the follow below
brain stats --follow || true
trap 'exit 130' INT
log "brain-api keeps running at $URL; Ctrl-C stops it"
wait $SERVER
