"""Batch-1 latency of petal's TensorFlow Lite interpreter against LiteRT (its default resolver,
XNNPACK, 2 threads) on the same files, alternating the two in rounds so drift hits both alike.
Prints one line per file: the medians (best round each) and petal's speed as a ratio of LiteRT's.

    python scripts/bench_tflite_litert.py [--petal target/release/petal] [--runs 200] [--rounds 3] FILE...

Needs ai-edge-litert and numpy (e.g. .ci/run's venv, or .venv-tf).
"""
import argparse
import re
import subprocess
import time

import numpy as np
from ai_edge_litert.interpreter import Interpreter


def litert_median_ms(path, runs):
    interpreter = Interpreter(model_path=path, num_threads=2)
    runner = interpreter.get_signature_runner()
    details = runner.get_input_details()
    inputs = {}
    for name, d in details.items():
        n = int(np.prod(d["shape"]))
        values = (np.arange(n, dtype=np.uint64) * 2654435761) % 256
        inputs[name] = values.astype(d["dtype"]).reshape(d["shape"])
    for _ in range(10):
        runner(**inputs)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        runner(**inputs)
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times))


def petal_median_ms(petal, path, runs):
    out = subprocess.run([petal, "bench", "infer", "--tflite", path, "--runs", str(runs)],
                         check=True, capture_output=True, text=True).stdout
    return float(re.search(r"([0-9.]+) ms median", out).group(1))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--petal", default="target/release/petal")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    for path in args.files:
        ours, theirs = [], []
        for _ in range(args.rounds):
            ours.append(petal_median_ms(args.petal, path, args.runs))
            theirs.append(litert_median_ms(path, args.runs))
        p, l = min(ours), min(theirs)
        print(f"{path}: petal {p:.3f} ms, LiteRT {l:.3f} ms, petal speed {l / p:.2f}x LiteRT's",
              flush=True)


if __name__ == "__main__":
    main()
