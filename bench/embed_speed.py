"""Local embedder speed: the NumPy forward pass vs the fused ONNX graph (fp32 and int8), side by side.

Run:  python bench/embed_speed.py [--chunks 1000] [--rounds 3] [--threads T] [--batch-size 16]
                                  [--spin] [--batch-sizes 8 16 32]

How it measures, honestly:
- The texts are real code: the Python standard library's .py files, cut by the project's own chunker
  exactly as ingest cuts them (``chunk_text(code=True, max_tokens=200, overlap=32)``).
- This machine is noisy (other work shares the cores), so absolute rates drift by 2x between
  minutes. The variants therefore run in interleaved rounds in one process, the order rotating every
  round, and each round prints the load average it started at: compare ratios within a round.
- Quality is printed next to speed: the min and mean cosine of each variant's vectors to the NumPy
  path's, which is identical to sentence-transformers (tests/core/test_embed.py).
- ``--threads`` sizes every variant's pool (OpenBLAS for NumPy, the intra-op pool for ONNX);
  the default is every usable core.
"""

from __future__ import annotations

import argparse
import os
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "app"))


def corpus(count: Callable[[list[str]], list[int]], n: int) -> list[str]:
    """The first ``n`` chunks of the stdlib's .py files, in path order, as ingest would cut them."""
    from brain.core.chunking import chunk_text

    texts: list[str] = []
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py")):
        content = path.read_text(errors="replace")
        texts += [c.text for c in chunk_text(content, code=True, max_tokens=200, overlap=32, count=count)]
        if len(texts) >= n:
            return texts[:n]
    return texts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--chunks", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="pool size of every variant (0: all usable cores)")
    ap.add_argument("--batch-size", type=int, default=16, help="ONNX batch size")
    ap.add_argument("--batch-sizes", type=int, nargs="*", default=[],
                    help="also run fp32 at these batch sizes (to choose the default)")
    ap.add_argument("--spin", action="store_true", help="also run fp32 with intra-op spinning on")
    ap.add_argument("--cache-dir", type=Path, default=None, help="ONNX graph cache (default: a temporary folder)")
    args = ap.parse_args()
    if args.threads:  # before NumPy is imported: OpenBLAS reads it once
        os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)

    import numpy as np

    from brain.core.embed import Embedder, LocalEmbedder
    from brain.core.onnx_embed import OnnxEmbedder

    cache = args.cache_dir or Path(tempfile.mkdtemp(prefix="brain-onnx-"))
    threads = args.threads or None
    t = time.perf_counter()
    fp32 = OnnxEmbedder("all-MiniLM-L6-v2", threads=threads, batch_size=args.batch_size, cache_dir=cache)
    load_fp32 = time.perf_counter() - t
    t = time.perf_counter()
    int8 = OnnxEmbedder("all-MiniLM-L6-v2", threads=threads, batch_size=args.batch_size, quantize="int8",
                        cache_dir=cache)
    load_int8 = time.perf_counter() - t
    variants: dict[str, Embedder] = {"numpy": LocalEmbedder("all-MiniLM-L6-v2"), "onnx fp32": fp32,
                                     "onnx int8": int8}
    for bs in args.batch_sizes:
        variants[f"onnx fp32 b{bs}"] = OnnxEmbedder("all-MiniLM-L6-v2", threads=threads, batch_size=bs,
                                                    cache_dir=cache)
    if args.spin:
        class Spinning(OnnxEmbedder):
            allow_spinning = True

        variants["onnx fp32 spin"] = Spinning("all-MiniLM-L6-v2", threads=threads, batch_size=args.batch_size,
                                              cache_dir=cache)

    texts = corpus(fp32.count_tokens, args.chunks)
    tokens = np.array(fp32.count_tokens(texts))
    print(f"machine: {len(os.sched_getaffinity(0))} usable cores, threads per variant: {args.threads or 'all'}; "
          f"numpy {np.__version__}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"corpus: {len(texts)} chunks of stdlib .py files, tokens per chunk mean {tokens.mean():.0f}, "
          f"median {np.median(tokens):.0f}, max {tokens.max()} (model reads at most {fp32.max_tokens})")
    print(f"graph load: fp32 {load_fp32:.1f} s ({'built' if fp32.built else 'cached'}), "
          f"int8 {load_int8:.1f} s ({'quantized' if int8.built else 'cached'})")

    names = list(variants)
    rates: dict[str, list[float]] = {n: [] for n in names}
    vectors: dict[str, np.ndarray] = {}
    for r in range(args.rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        load = os.getloadavg()[0]
        line = []
        for name in order:
            start = time.perf_counter()
            res = variants[name].embed(texts)
            rate = len(texts) / (time.perf_counter() - start)
            rates[name].append(rate)
            vectors.setdefault(name, res.vectors)
            line.append(f"{name} {rate:6.1f}")
        ratios = "  ".join(f"{n} x{rates[n][-1] / rates['numpy'][-1]:.2f}" for n in names if n != "numpy")
        print(f"round {r + 1} (load {load:.2f}) chunks/s: {' | '.join(line)}   vs numpy: {ratios}")

    print("\nsummary (median of rounds; ratio = median of per-round ratios to numpy):")
    for name in names:
        ratio = float(np.median([a / b for a, b in zip(rates[name], rates["numpy"])]))
        cos = (vectors[name] * vectors["numpy"]).sum(1)
        print(f"  {name:18s} {np.median(rates[name]):7.1f} chunks/s  x{ratio:5.2f}   "
              f"cos vs numpy min {cos.min():.7f} mean {cos.mean():.7f}")
    if "onnx int8" in vectors:
        cos = (vectors["onnx int8"] * vectors["onnx fp32"]).sum(1)
        print(f"  int8 vs fp32 cosine: min {cos.min():.4f} mean {cos.mean():.4f}")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
