"""Write the evaluation's Claude Code sessions as Claude Code writes them (JSONL, one record a line).

Run:  python bench/eval/write_sessions.py   (rewrites bench/eval/claude-projects/; the output is committed)

Why a script and not hand-typed JSONL: a real transcript repeats the same envelope (cwd, sessionId,
version, gitBranch, uuid chain, timestamps) on every line, splits an assistant turn into one line per
content block under one ``message.id``, and answers each ``tool_use`` with a ``tool_result`` in a user
line carrying ``toolUseResult``. Typing that by hand invites format mistakes the collector would then
paper over. The conversations themselves (below) were written by hand for this evaluation: several
projects of one developer, with near-duplicate topics across sessions so that retrieval has to tell
them apart. The shapes follow ``shared/reference/claude-code-logs.md`` and the real fixtures in
``tests/fixtures/claude-projects`` (2.1.38 lines).
"""

from __future__ import annotations

import json
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "claude-projects"
VERSION = "2.1.38"
MODEL = "claude-opus-4-6"

# (kind, ...): ("u", prompt) | ("a", text) | ("t", tool, input, result[, is_error])
Turn = tuple[Any, ...]

SESSIONS: list[dict[str, Any]] = [
    {"sid": "9aa28cd8-5db5-4f77-a890-604f64167461", "cwd": "/home/marco/projects/ledgerly", "branch": "fix/bank-sync",
     "start": "2026-09-14T08:12:03Z", "title": "Refresh expired bank API token and retry",
     "turns": [
         ("u", "the nightly bank sync fails with 401 every morning, the access token from the open banking provider "
               "expires after an hour. make the client refresh it and try the request again once"),
         ("t", "Grep", {"pattern": "Authorization", "path": "ledgerly/banking"},
          "ledgerly/banking/client.py:41:        headers = {\"Authorization\": f\"Bearer {self.token.access}\"}"),
         ("t", "Read", {"file_path": "/home/marco/projects/ledgerly/ledgerly/banking/client.py"},
          "class BankClient:\n    def get(self, path):\n        resp = self.session.get(self.base + path, headers=self._headers())\n"
          "        resp.raise_for_status()\n        return resp.json()"),
         ("a", "The client never looks at the token's expiry. I'll wrap `get` so a 401 triggers one refresh through "
               "the refresh_token grant, stores the new pair in `BankCredential`, and replays the request. A second "
               "401 after the refresh is raised, so we never loop."),
         ("t", "Edit", {"file_path": "/home/marco/projects/ledgerly/ledgerly/banking/client.py",
                        "old_string": "resp.raise_for_status()",
                        "new_string": "if resp.status_code == 401 and not retried:\n            self._refresh_token()\n"
                                      "            return self.get(path, retried=True)\n        resp.raise_for_status()"},
          "The file /home/marco/projects/ledgerly/ledgerly/banking/client.py has been updated."),
         ("t", "Bash", {"command": "pytest tests/banking -q", "description": "Run banking tests"},
          "........                                                  [100%]\n8 passed in 1.92s"),
         ("a", "Done: a 401 now refreshes the token once and retries; the refreshed token is saved so the next "
               "nightly run starts with a valid one. Added a test with a mocked provider returning 401 then 200."),
     ]},
    {"sid": "7297fb98-2a3a-4bb8-8861-e14629434f2b", "cwd": "/home/marco/projects/ledgerly", "branch": "main",
     "start": "2026-09-22T21:40:10Z", "title": "Flaky invoice due-date test around midnight UTC",
     "turns": [
         ("u", "test_invoice_due_date fails randomly on CI but never locally. can you look"),
         ("t", "Bash", {"command": "pytest tests/invoices/test_due.py -q -p no:randomly", "description": "Run test"},
          "F\nAssertionError: assert datetime.date(2026, 9, 23) == datetime.date(2026, 9, 22)", True),
         ("a", "The test builds the expected date with `date.today()` (local time) while the model computes the due "
               "date from `timezone.now()` in UTC. CI runs in UTC and my laptop in Europe/Berlin, so between 22:00 "
               "and midnight they disagree. I'll freeze time with freezegun and compare in UTC."),
         ("t", "Edit", {"file_path": "/home/marco/projects/ledgerly/tests/invoices/test_due.py",
                        "old_string": "expected = date.today() + timedelta(days=14)",
                        "new_string": "expected = timezone.now().date() + timedelta(days=14)"},
          "The file has been updated."),
         ("t", "Bash", {"command": "TZ=Pacific/Kiritimati pytest tests/invoices -q"}, "14 passed in 0.88s"),
         ("a", "Fixed by freezing time at 23:30 UTC in the test and deriving the expected date from the same clock."),
     ]},
    {"sid": "0bbc5fd9-532f-452b-88c2-5e3f38499301", "cwd": "/home/marco/projects/ledgerly", "branch": "perf/indexes",
     "start": "2026-10-02T10:05:44Z", "title": "Add index on transactions without locking the table",
     "turns": [
         ("u", "the transactions list page is slow, we need an index on (account_id, booked_at). the table has 40M "
               "rows in prod so the migration can't lock it"),
         ("a", "Postgres can build it with CREATE INDEX CONCURRENTLY, which cannot run inside a transaction. In a "
               "Django migration that means `atomic = False` and `AddIndexConcurrently` from "
               "django.contrib.postgres.operations."),
         ("t", "Write", {"file_path": "/home/marco/projects/ledgerly/ledgerly/ledger/migrations/0042_txn_account_booked_idx.py"},
          "File created successfully"),
         ("t", "Bash", {"command": "python manage.py sqlmigrate ledger 0042"},
          "CREATE INDEX CONCURRENTLY \"txn_account_booked_idx\" ON \"ledger_transaction\" (\"account_id\", \"booked_at\" DESC);"),
         ("a", "If the concurrent build fails halfway it leaves an INVALID index behind; the runbook note says to "
               "DROP INDEX CONCURRENTLY it and rerun the migration."),
     ]},
    {"sid": "38538c89-e245-4064-bad2-367ec1e8549c", "cwd": "/home/marco/projects/ledgerly", "branch": "fix/dup-reminders",
     "start": "2026-10-11T14:22:00Z", "title": "Customers got the payment reminder email twice",
     "turns": [
         ("u", "some customers got the overdue reminder twice yesterday. celery beat + worker, redis broker"),
         ("t", "Bash", {"command": "grep -c 'send_overdue_reminder' /var/log/ledgerly/worker.log"}, "1184"),
         ("a", "The task was redelivered: the worker took longer than the broker's visibility_timeout (1 h) during "
               "the bulk run, so Redis handed the same message to a second worker. The task itself is not "
               "idempotent."),
         ("t", "Edit", {"file_path": "/home/marco/projects/ledgerly/ledgerly/billing/tasks.py",
                        "old_string": "def send_overdue_reminder(invoice_id):",
                        "new_string": "@shared_task(acks_late=True)\ndef send_overdue_reminder(invoice_id):"},
          "The file has been updated."),
         ("a", "Now each reminder first inserts a row into `ReminderSent(invoice, day)` with a unique constraint; if "
               "the insert hits IntegrityError the task returns without sending. Duplicate deliveries become no-ops."),
     ]},
    {"sid": "a8017d41-4394-456c-911b-849fab1b54ba", "cwd": "/home/marco/projects/spotter", "branch": "master",
     "start": "2026-02-14T19:03:31Z", "title": "LiveView process memory keeps growing",
     "turns": [
         ("u", "the dashboard liveview grows to 300MB per connected user after an hour. what's holding memory"),
         ("t", "Bash", {"command": "mix run -e ':observer_cli.start()'"},
          "|Pid  |Name |Memory | Reductions\n|<0.912.0>|SpotterWeb.DashboardLive|312.4 MB|..."),
         ("a", "The socket assigns keep the whole event list: every PubSub message appends to `@events` and nothing "
               "trims it. LiveView keeps assigns in the process state, so it grows forever. Switching to "
               "`stream/3` keeps only what the client needs and lets the server forget rendered items."),
         ("t", "Edit", {"file_path": "/home/marco/projects/spotter/lib/spotter_web/live/dashboard_live.ex",
                        "old_string": "assign(socket, events: [event | socket.assigns.events])",
                        "new_string": "stream_insert(socket, :events, event, at: 0, limit: 200)"},
          "The file has been updated."),
         ("a", "After the change the process stays under 6 MB after an hour of events."),
     ]},
    {"sid": "bb2ae9e8-7f71-4705-abd3-dcba6801adf4", "cwd": "/home/marco/projects/spotter", "branch": "feat/otel",
     "start": "2026-02-12T09:30:00Z", "title": "Send OpenTelemetry traces to the collector over OTLP",
     "turns": [
         ("u", "wire up opentelemetry so phoenix and ecto spans go to our collector at otel.internal:4318"),
         ("t", "Read", {"file_path": "/home/marco/projects/spotter/config/runtime.exs"}, "import Config\n..."),
         ("a", "I'll add the exporter config in runtime.exs: `otel_exporter_otlp_protocol: :http_protobuf` and the "
               "endpoint from OTEL_EXPORTER_OTLP_ENDPOINT, then call `OpentelemetryPhoenix.setup/1` and "
               "`OpentelemetryEcto.setup([:spotter, :repo])` in Application.start."),
         ("t", "Bash", {"command": "mix deps.get && mix compile"}, "Generated spotter app"),
         ("t", "Bash", {"command": "curl -s localhost:4000/ && sleep 6 && docker logs otel-collector | tail -3"},
          "Span #0 Trace ID: 5b8efff798038103d269b633813fc60c Name: GET /\nSpan #1 Name: spotter.repo.query:users"),
         ("a", "Traces arrive: the request span has the Ecto query as a child. Batch processor flushes every 5 s."),
     ]},
    {"sid": "a1aed3b9-e148-4d66-b85a-6c6895276d68", "cwd": "/home/marco/projects/infra", "branch": "main",
     "start": "2026-08-03T07:55:12Z", "title": "Terraform apply stuck on state lock",
     "turns": [
         ("u", "terraform apply says Error acquiring the state lock, ConditionalCheckFailedException. nobody else "
               "is running it, my laptop died during the last apply"),
         ("t", "Bash", {"command": "terraform plan -lock-timeout=30s"},
          "Error: Error acquiring the state lock\nLock Info:\n  ID:        8f1c7f5e-2b1e-9d53-77a0-4c1a3e2d9b10\n"
          "  Path:      ledgerly-tfstate/prod/terraform.tfstate\n  Who:       marco@thinkpad\n  Created:   2026-08-02 18:41:07", True),
         ("a", "The lock item in the DynamoDB table is left over from the crashed run (same user, yesterday). It is "
               "safe to release it with force-unlock using the lock ID, after checking no CI job is applying."),
         ("t", "Bash", {"command": "terraform force-unlock -force 8f1c7f5e-2b1e-9d53-77a0-4c1a3e2d9b10"},
          "Terraform state has been successfully unlocked!"),
         ("t", "Bash", {"command": "terraform plan"}, "No changes. Your infrastructure matches the configuration."),
     ]},
    {"sid": "3d0c6dd1-c4b7-4ff4-b415-f905854b4c53", "cwd": "/home/marco/projects/infra", "branch": "fix/nginx-502",
     "start": "2026-08-19T16:10:40Z", "title": "nginx 502 upstream sent too big header",
     "turns": [
         ("u", "after we added the SSO cookie, some users get 502 bad gateway from nginx in front of the app"),
         ("t", "Bash", {"command": "ssh web1 sudo tail -n 3 /var/log/nginx/error.log"},
          "upstream sent too big header while reading response header from upstream, client: 10.0.3.7, "
          "server: app.ledgerly.io, upstream: \"http://127.0.0.1:8000/login/callback\""),
         ("a", "The response headers (several Set-Cookie lines with the SSO JWT) exceed proxy_buffer_size (4k). "
               "Raising proxy_buffer_size to 16k and proxy_buffers to 8 16k fixes it; I'll put it in the ansible "
               "template for the site."),
         ("t", "Edit", {"file_path": "/home/marco/projects/infra/roles/nginx/templates/site.conf.j2",
                        "old_string": "proxy_pass http://app;",
                        "new_string": "proxy_pass http://app;\n    proxy_buffer_size 16k;\n    proxy_buffers 8 16k;"},
          "The file has been updated."),
         ("t", "Bash", {"command": "ansible-playbook site.yml -l web --tags nginx"}, "web1 : ok=7 changed=1"),
     ]},
    {"sid": "a3129fec-b00f-4eb8-a842-d88aab800d4a", "cwd": "/home/marco/projects/infra", "branch": "main",
     "start": "2026-09-01T06:02:19Z", "title": "Let's Encrypt certificate did not renew",
     "turns": [
         ("u", "the cert for status.ledgerly.io expired this morning. certbot should renew it automatically?"),
         ("t", "Bash", {"command": "ssh status1 systemctl list-timers certbot.timer; ssh status1 journalctl -u certbot -n 5"},
          "certbot.timer  loaded active\nFailed to renew certificate status.ledgerly.io with error: Could not bind "
          "TCP port 80 because it is already in use by another process", True),
         ("a", "Renewal uses the standalone authenticator, which needs port 80, but nginx holds it now. Switching "
               "the renewal config to the webroot authenticator (/var/www/letsencrypt served by nginx) avoids the "
               "conflict, and a deploy hook reloads nginx after renewal."),
         ("t", "Bash", {"command": "ssh status1 sudo certbot renew --cert-name status.ledgerly.io --webroot -w /var/www/letsencrypt "
                                   "--deploy-hook 'systemctl reload nginx'"},
          "Congratulations, all renewals succeeded"),
     ]},
    {"sid": "18a86c59-9a4a-42c0-9d33-84943174a6ae", "cwd": "/home/marco/projects/pyclip", "branch": "main",
     "start": "2026-07-07T12:00:00Z", "title": "Console script entry point missing after pip install",
     "turns": [
         ("u", "after pip install . the pyclip command doesn't exist, only python -m pyclip works"),
         ("t", "Read", {"file_path": "/home/marco/projects/pyclip/pyproject.toml"},
          "[project]\nname = \"pyclip\"\n[project.entry-points.console_scripts]\npyclip = \"pyclip.cli:main\""),
         ("a", "`[project.entry-points.console_scripts]` is not the same table as `[project.scripts]`: setuptools "
               "refuses console_scripts in entry-points... it should be declared under [project.scripts]."),
         ("t", "Edit", {"file_path": "/home/marco/projects/pyclip/pyproject.toml",
                        "old_string": "[project.entry-points.console_scripts]", "new_string": "[project.scripts]"},
          "The file has been updated."),
         ("t", "Bash", {"command": "pip install . -q && which pyclip && pyclip --version"},
          "/home/marco/.venvs/pyclip/bin/pyclip\npyclip 0.4.1"),
     ]},
    {"sid": "7b2c804a-3af8-4740-a77a-fd666c68bbcd", "cwd": "/home/marco/projects/pyclip", "branch": "fix/ci-logs",
     "start": "2026-07-15T18:44:00Z", "title": "Progress bar garbage in CI logs",
     "turns": [
         ("u", "in github actions logs the progress bar prints hundreds of lines with weird escape codes"),
         ("a", "rich decides whether it is on a terminal from `isatty()`; GitHub Actions sets a pseudo-terminal for "
               "some steps? No: the log shows `\\x1b[2K` because we force `Console(force_terminal=True)`. I'll only "
               "show the live progress when stdout is a TTY and otherwise print one summary line per file."),
         ("t", "Edit", {"file_path": "/home/marco/projects/pyclip/pyclip/progress.py",
                        "old_string": "Console(force_terminal=True)",
                        "new_string": "Console()\n    live = console.is_terminal and not quiet"},
          "The file has been updated."),
         ("t", "Bash", {"command": "pyclip sync ./samples | cat"}, "synced 12 files (3.4 MB) in 1.2s"),
     ]},
    {"sid": "6d89adaa-f21c-4236-bee6-486c585aa58c", "cwd": "/home/marco/projects/pyclip", "branch": "windows",
     "start": "2026-07-28T09:12:00Z", "title": "Windows: config file not found under AppData",
     "turns": [
         ("u", "a user on windows says pyclip ignores their config. they put it in %APPDATA%\\pyclip\\config.toml"),
         ("t", "Grep", {"pattern": "expanduser", "path": "pyclip"}, "pyclip/config.py:12: CONFIG = os.path.expanduser('~/.config/pyclip/config.toml')"),
         ("a", "We hardcode the XDG path. I'll use platformdirs' user_config_dir('pyclip') so Windows gets "
               "AppData\\Roaming\\pyclip and macOS gets ~/Library/Application Support/pyclip, keeping "
               "~/.config on Linux."),
         ("t", "Bash", {"command": "pip install platformdirs==4.3.6 && pytest tests/test_config.py -q"}, "6 passed"),
     ]},
    {"sid": "05eb5e50-e9ae-428d-8513-64ce54568aa6", "cwd": "/home/marco/projects/webshop-frontend", "branch": "main",
     "start": "2026-05-04T13:20:00Z", "title": "Product list fetched twice on page load",
     "turns": [
         ("u", "network tab shows GET /api/products twice whenever the catalog page mounts"),
         ("a", "That is React 18 StrictMode in development: it mounts, unmounts and mounts again to surface effects "
               "without cleanup. Production builds fetch once. The real bug is that the first response can land "
               "after the second; I'll add an AbortController in the effect cleanup."),
         ("t", "Edit", {"file_path": "/home/marco/projects/webshop-frontend/src/pages/Catalog.tsx",
                        "old_string": "useEffect(() => { fetchProducts().then(setProducts) }, [])",
                        "new_string": "useEffect(() => {\n  const ctl = new AbortController()\n  fetchProducts({ signal: ctl.signal }).then(setProducts)\n  return () => ctl.abort()\n}, [])"},
          "The file has been updated."),
         ("t", "Bash", {"command": "npm test -- Catalog"}, "Tests: 4 passed, 4 total"),
     ]},
    {"sid": "53ae207b-df27-40e5-ae7b-30d0b8a1f895", "cwd": "/home/marco/projects/webshop-frontend", "branch": "main",
     "start": "2026-05-09T08:05:00Z", "title": "Vite env variable undefined in the browser",
     "turns": [
         ("u", "import.meta.env.API_URL is undefined in the built app even though it's in .env.production"),
         ("a", "Vite only exposes variables prefixed with VITE_ to client code, to avoid leaking server secrets "
               "into the bundle. Rename it to VITE_API_URL (or set envPrefix in vite.config.ts)."),
         ("t", "Bash", {"command": "sed -i 's/^API_URL=/VITE_API_URL=/' .env.production && grep -rl 'env.API_URL' src"},
          "src/api/client.ts"),
         ("t", "Edit", {"file_path": "/home/marco/projects/webshop-frontend/src/api/client.ts",
                        "old_string": "import.meta.env.API_URL", "new_string": "import.meta.env.VITE_API_URL"},
          "The file has been updated."),
         ("t", "Bash", {"command": "npm run build && grep -o 'api.webshop.example[^\"]*' dist/assets/*.js | head -1"},
          "dist/assets/index-9f2c.js:api.webshop.example/v1"),
     ]},
    {"sid": "4e774981-7e67-4d77-ab3a-c6574d9392a6", "cwd": "/home/marco/projects/webshop-frontend", "branch": "feat/login",
     "start": "2026-05-20T15:31:00Z", "title": "CORS error when sending cookies to the API",
     "turns": [
         ("u", "login works with curl but from the browser the request is blocked: credentials flag is true but "
               "Access-Control-Allow-Origin is '*'"),
         ("a", "With `credentials: 'include'` the browser refuses a wildcard origin. The API must echo the exact "
               "origin and send Access-Control-Allow-Credentials: true, and the OPTIONS preflight must answer "
               "the same headers. That is on the Flask side: flask-cors with supports_credentials=True and an "
               "explicit origins list."),
         ("t", "Bash", {"command": "curl -si -X OPTIONS https://api.webshop.example/v1/login -H 'Origin: https://shop.example' "
                                   "-H 'Access-Control-Request-Method: POST' | grep -i access-control"},
          "access-control-allow-origin: https://shop.example\naccess-control-allow-credentials: true"),
         ("a", "Preflight now passes; also set SameSite=None; Secure on the session cookie because the shop and API "
               "are on different sites."),
     ]},
    {"sid": "07beb655-5714-482f-b7e3-5f5be0b55cc8", "cwd": "/home/marco/projects/datapipe", "branch": "main",
     "start": "2026-06-02T10:00:00Z", "title": "Out of memory loading the 12 GB orders CSV",
     "turns": [
         ("u", "the import job gets OOM-killed reading orders_2025.csv (12GB) with pandas.read_csv"),
         ("a", "pandas loads it whole, and object dtype strings take ~5x the file size. Two options: read in chunks "
               "with `chunksize=500_000` and aggregate per chunk, or let DuckDB scan the CSV lazily and only "
               "materialise the aggregate. DuckDB is simpler here because we only need daily totals."),
         ("t", "Bash", {"command": "python -c \"import duckdb; print(duckdb.sql(\\\"select date_trunc('day', ts) d, sum(amount) "
                                   "from read_csv_auto('orders_2025.csv') group by 1 order by 1 limit 3\\\").fetchall())\""},
          "[(datetime.date(2025, 1, 1), 18233.4), (datetime.date(2025, 1, 2), 20511.9), (datetime.date(2025, 1, 3), 19880.0)]"),
         ("a", "Peak RSS is now 900 MB instead of being killed at 16 GB; the job takes 41 s."),
     ]},
    {"sid": "a8742340-f463-4cbc-a505-0526772386c3", "cwd": "/home/marco/projects/datapipe", "branch": "fix/parquet",
     "start": "2026-06-10T11:11:11Z", "title": "Parquet files refuse to concatenate: int64 vs double",
     "turns": [
         ("u", "pyarrow says Unable to merge: Field discount has incompatible types: int64 vs double when reading "
               "the partitioned dataset"),
         ("a", "Partitions written on days without any missing discount inferred int64; days with a NaN became "
               "double, because pandas has no nullable int by default. The writer should declare the schema "
               "explicitly instead of letting each partition infer it."),
         ("t", "Edit", {"file_path": "/home/marco/projects/datapipe/datapipe/export.py",
                        "old_string": "table = pa.Table.from_pandas(df)",
                        "new_string": "table = pa.Table.from_pandas(df, schema=ORDERS_SCHEMA, preserve_index=False)"},
          "The file has been updated."),
         ("t", "Bash", {"command": "python -m datapipe.rewrite_partitions --since 2025-01-01"}, "rewrote 312 partitions"),
     ]},
    {"sid": "905ecb6d-7437-4fd6-b8cc-06050d9df2bb", "cwd": "/home/marco/projects/datapipe", "branch": "perf",
     "start": "2026-06-18T16:40:00Z", "title": "Speed up the per-customer groupby",
     "turns": [
         ("u", "the customer report takes 9 minutes, it's a groupby with a python lambda per group"),
         ("t", "Bash", {"command": "python -m cProfile -s cumtime report.py | head -8"},
          "   ncalls  tottime  cumtime filename:lineno(function)\n   184220  212.3  498.1 report.py:33(<lambda>)"),
         ("a", "`groupby(...).apply(lambda g: ...)` calls Python 184k times. The lambda only computes first/last "
               "order dates and a sum, which `agg` does vectorised with named aggregations."),
         ("t", "Edit", {"file_path": "/home/marco/projects/datapipe/report.py",
                        "old_string": ".apply(lambda g: summarize(g))",
                        "new_string": ".agg(first_order=('ts', 'min'), last_order=('ts', 'max'), total=('amount', 'sum'))"},
          "The file has been updated."),
         ("t", "Bash", {"command": "time python report.py"}, "real 0m14.2s"),
     ]},
    {"sid": "f9c63392-1bdb-4c64-9e64-8fdb1db766ea", "cwd": "/home/marco/projects/dotfiles", "branch": "main",
     "start": "2026-04-11T20:00:00Z", "title": "tmux copy mode with vi keys to the system clipboard",
     "turns": [
         ("u", "I want v to start a selection and y to copy to the wayland clipboard in tmux copy mode"),
         ("a", "Set `mode-keys vi`, bind `v` to begin-selection and `y` to copy-pipe-and-cancel with wl-copy. "
               "For X11 sessions fall back to xclip."),
         ("t", "Edit", {"file_path": "/home/marco/projects/dotfiles/tmux/tmux.conf",
                        "old_string": "# copy mode",
                        "new_string": "setw -g mode-keys vi\nbind -T copy-mode-vi v send -X begin-selection\n"
                                      "bind -T copy-mode-vi y send -X copy-pipe-and-cancel 'wl-copy'"},
          "The file has been updated."),
         ("t", "Bash", {"command": "tmux source-file ~/.config/tmux/tmux.conf && echo ok"}, "ok"),
     ]},
    {"sid": "cdd2eb0a-7c00-47f6-94cf-7f31efaa9fd2", "cwd": "/home/marco/projects/dotfiles", "branch": "main",
     "start": "2026-04-20T07:30:00Z", "title": "zsh takes two seconds to start",
     "turns": [
         ("u", "opening a new terminal takes ~2s before the prompt appears"),
         ("t", "Bash", {"command": "zsh -i -c 'zmodload zsh/zprof; source ~/.zshrc; zprof' | head -5"},
          "num  calls   time                       self            name\n 1)    1   1421.55  71.2%   1390.10  69.6%  nvm_auto"),
         ("a", "nvm's init script runs on every shell. I'll load it lazily: define small `node`, `npm`, `npx` "
               "functions that source nvm.sh on first use and then replace themselves."),
         ("t", "Bash", {"command": "for i in 1 2 3; do /usr/bin/time -f %e zsh -i -c exit; done"}, "0.21\n0.19\n0.20"),
     ]},
    {"sid": "1766857b-5ecb-47e3-8a5c-8a4aefddfc75", "cwd": "/home/marco/projects/ledgerly", "branch": "feat/stripe",
     "start": "2026-10-20T11:48:00Z", "title": "Stripe webhook signature verification fails",
     "turns": [
         ("u", "stripe webhooks all fail with No signatures found matching the expected signature for payload"),
         ("t", "Read", {"file_path": "/home/marco/projects/ledgerly/ledgerly/payments/views.py"},
          "def stripe_webhook(request):\n    payload = json.dumps(json.loads(request.body))\n    event = stripe.Webhook.construct_event(payload, sig, secret)"),
         ("a", "The signature is computed over the exact raw bytes Stripe sent. Re-serialising the JSON changes "
               "whitespace and key order, so verification can never match. Pass `request.body` unchanged, and "
               "make sure the endpoint secret is the one of this endpoint (whsec_...), not the API key."),
         ("t", "Edit", {"file_path": "/home/marco/projects/ledgerly/ledgerly/payments/views.py",
                        "old_string": "payload = json.dumps(json.loads(request.body))", "new_string": "payload = request.body"},
          "The file has been updated."),
         ("t", "Bash", {"command": "stripe trigger invoice.paid"}, "Trigger succeeded! Check dashboard for event details."),
     ]},
    {"sid": "89139eb9-01a7-4514-a1aa-883a0d2411fb", "cwd": "/home/marco/projects/ledgerly", "branch": "chore/compose",
     "start": "2026-10-25T09:00:00Z", "title": "Web container starts before Postgres is ready",
     "turns": [
         ("u", "docker compose up: web crashes with connection refused to db on the first start, works on restart"),
         ("a", "`depends_on` only waits for the db container to start, not for Postgres to accept connections. "
               "Add a healthcheck with pg_isready and `depends_on: db: condition: service_healthy`."),
         ("t", "Edit", {"file_path": "/home/marco/projects/ledgerly/compose.yaml",
                        "old_string": "depends_on:\n      - db",
                        "new_string": "depends_on:\n      db:\n        condition: service_healthy"},
          "The file has been updated."),
         ("t", "Bash", {"command": "docker compose down -v && docker compose up -d && docker compose ps"},
          "ledgerly-db-1   postgres:16   Up 12 seconds (healthy)\nledgerly-web-1  ledgerly-web  Up 2 seconds"),
     ]},
]


def _encode_cwd(cwd: str) -> str:
    """Claude Code's project folder name: every non-alphanumeric character becomes ``-``."""
    return "".join(c if c.isalnum() else "-" for c in cwd)


class _Writer:
    """Builds one session's records with a consistent uuid chain and clock."""

    def __init__(self, spec: dict[str, Any]):
        self.spec = spec
        self.clock = datetime.fromisoformat(spec["start"].replace("Z", "+00:00")).astimezone(UTC)
        self.parent: str | None = None
        self.records: list[dict[str, Any]] = []
        self._n = 0

    def _id(self, kind: str) -> str:
        self._n += 1
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"brain-eval/{self.spec['sid']}/{kind}/{self._n}"))

    def _tick(self, seconds: float) -> str:
        self.clock += timedelta(seconds=seconds)
        return self.clock.strftime("%Y-%m-%dT%H:%M:%S.") + f"{self.clock.microsecond // 1000:03d}Z"

    def _envelope(self, kind: str, seconds: float, **extra: Any) -> dict[str, Any]:
        uid = self._id(kind)
        rec = {"parentUuid": self.parent, "isSidechain": False, "userType": "external", "cwd": self.spec["cwd"],
               "sessionId": self.spec["sid"], "version": VERSION, "gitBranch": self.spec["branch"], "type": kind}
        rec.update(extra)
        rec.update({"uuid": uid, "timestamp": self._tick(seconds)})
        self.parent = uid
        self.records.append(rec)
        return rec

    def user(self, text: str) -> None:
        self._envelope("user", 40, message={"role": "user", "content": text},
                       thinkingMetadata={"maxThinkingTokens": 31999}, todos=[], permissionMode="default")

    def assistant(self, blocks: list[dict[str, Any]]) -> str:
        msg_id = "msg_01" + uuid.uuid5(uuid.NAMESPACE_URL, f"{self.spec['sid']}/{self._n}").hex[:22]
        last = None
        for block in blocks:  # one line per content block, sharing the message id
            last = self._envelope("assistant", 3, requestId="req_011" + msg_id[-18:], message={
                "model": MODEL, "id": msg_id, "type": "message", "role": "assistant", "content": [block],
                "stop_reason": None, "stop_sequence": None,
                "usage": {"input_tokens": 3, "cache_read_input_tokens": 14210, "output_tokens": 120}})
        return last["uuid"] if last else ""

    def tool(self, name: str, inp: dict[str, Any], result: str, is_error: bool = False) -> None:
        tool_id = "toolu_01" + uuid.uuid5(uuid.NAMESPACE_URL, f"{self.spec['sid']}/tool/{self._n}").hex[:22]
        source = self.assistant([{"type": "tool_use", "id": tool_id, "name": name, "input": inp}])
        tool_result = {"stdout": result, "stderr": "", "interrupted": False, "isImage": False} if name == "Bash" \
            else {"type": "text", "file": {"filePath": inp.get("file_path", ""), "content": result}}
        self._envelope("user", 2, message={"role": "user", "content": [
            {"tool_use_id": tool_id, "type": "tool_result", "content": result, "is_error": is_error}]},
            toolUseResult=("Error: " + result) if is_error else tool_result, sourceToolAssistantUUID=source)

    def build(self) -> list[dict[str, Any]]:
        for turn in self.spec["turns"]:
            if turn[0] == "u":
                self.user(turn[1])
            elif turn[0] == "a":
                self.assistant([{"type": "text", "text": turn[1]}])
            else:
                self.tool(*turn[1:])
        if self.spec.get("title"):
            self.records.append({"type": "ai-title", "aiTitle": self.spec["title"], "sessionId": self.spec["sid"]})
        return self.records


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    for spec in SESSIONS:
        folder = OUT / _encode_cwd(spec["cwd"])
        folder.mkdir(parents=True, exist_ok=True)
        lines = [json.dumps(r, separators=(",", ":"), ensure_ascii=False) for r in _Writer(spec).build()]
        (folder / f"{spec['sid']}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(SESSIONS)} sessions under {OUT}")


if __name__ == "__main__":
    main()
