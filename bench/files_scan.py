"""Benchmark: the files collector on a generated tree of N files (default 50,000).

Prints the time of a first run (walk, read, redact, queue in the outbox) and of an unchanged
re-run (walk + one stat per file), the issue-3 target being a re-run under 5 s on 2 cores.
Nothing is sent: the outbox is the end of the measured path.

    python bench/files_scan.py              # 50,000 files
    python bench/files_scan.py --files 5000 --keep
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

LINES = [
    "import os", "from pathlib import Path", "def handler(event, context):", "    return {'ok': True}",
    "class Store:", "    def __init__(self, path):", "        self.path = path", "# TODO: retry with backoff",
    "for item in items:", "    total += item.size", "const api = require('./api');", "export function f(x) {",
    "  return x * 2;", "}", "SELECT id, title FROM items WHERE source = ?;", "password = get_password()",
    "url = 'https://example.com/docs?page=2'", "logger.info('done in %s', elapsed)",
]
EXTS = [".py", ".py", ".py", ".ts", ".js", ".md", ".go", ".rs", ".json", ".yaml"]


def generate(root: Path, n: int, seed: int = 7) -> int:
    """``n`` text files in 50 git projects (each with a .gitignore and an ignored node_modules)."""
    rng = random.Random(seed)
    per_project = max(1, n // 50)
    total_bytes = 0
    made = 0
    for p in range(50):
        proj = root / f"project{p:02d}"
        (proj / ".git").mkdir(parents=True)
        (proj / ".gitignore").write_text("dist/\n*.log\n")
        (proj / "node_modules" / "dep").mkdir(parents=True)
        (proj / "node_modules" / "dep" / "index.js").write_text("module.exports = 1\n")
        for i in range(per_project if p < 49 else n - made):
            d = proj / f"pkg{i % 20:02d}" / f"sub{i % 7}"
            d.mkdir(parents=True, exist_ok=True)
            body = "\n".join(rng.choice(LINES) for _ in range(rng.randint(10, 80))) + "\n"
            (d / f"file{i:05d}{rng.choice(EXTS)}").write_text(body)
            total_bytes += len(body)
            made += 1
    return total_bytes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=50_000)
    ap.add_argument("--keep", action="store_true", help="keep the generated tree (path printed)")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="brain-bench-files-"))
    os.environ.update({"HOME": str(tmp / "home"), "XDG_CONFIG_HOME": str(tmp / "home/.config"),
                       "XDG_STATE_HOME": str(tmp / "home/.state"), "XDG_DATA_HOME": str(tmp / "home/.share")})
    for var in ("BRAIN_CONFIG", "BRAIN_COLLECT_FILES_ROOTS"):
        os.environ.pop(var, None)

    from brain.collect.files import FilesCollector
    from brain.collect.outbox import OutboxSink, State
    from brain.collect.redact import default_redactor
    from brain.shared import config

    tree = tmp / "tree"
    t0 = time.perf_counter()
    size = generate(tree, args.files)
    print(f"generated {args.files} files ({size / 1e6:.1f} MB) in {time.perf_counter() - t0:.1f} s under {tree}")

    cfg = config.load(overrides={"collect.files_roots": [str(tree)], "collect.host": "bench"})
    redactor = default_redactor()
    state = State(tmp / "state" / "collect.db")
    try:
        results = []
        for label in ("first run", "unchanged re-run"):
            collector = FilesCollector(cfg, state, OutboxSink(state), redactor)
            t0 = time.perf_counter()
            stats = collector.run()
            elapsed = time.perf_counter() - t0
            results.append(elapsed)
            print(f"{label:17s} {elapsed:7.2f} s  {stats.scanned / elapsed:9.0f} files/s  scanned {stats.scanned}, "
                  f"queued {stats.queued}, unchanged {stats.unchanged}, files read {collector.reads}, "
                  f"skipped {dict(stats.skipped)}, redacted {dict(stats.redacted)}")
        texts = [p.read_text() for p in tree.rglob("file*")]
        t0 = time.perf_counter()
        for text in texts:
            redactor.redact(text)
        red = time.perf_counter() - t0
        mb = sum(map(len, texts)) / 1e6
        print(f"redaction alone   {red:7.2f} s  {mb / red:9.1f} MB/s over the same {len(texts)} files "
              f"({red / results[0]:.0%} of the first run)")
        pending = state.pending()
        print(f"outbox: {pending['upsert']} items queued, {os.path.getsize(state.path) / 1e6:.1f} MB")
        print(f"target: unchanged re-run < 5 s on 2 cores -> {'met' if results[1] < 5 else 'NOT met'} "
              f"({results[1]:.2f} s, {os.cpu_count()} CPUs visible)")
    finally:
        state.close()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
