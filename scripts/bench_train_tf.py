"""Times the tutorial model in TensorFlow/Keras and in petal at every SIMD level this processor
runs (PETAL_SIMD; PETAL_LEVELS=avx2,scalar to choose), alternately, and prints the figures and
petal's speed-ups over TensorFlow: training images/s (batch 32, Adam, random data), batch-1
inference latency and batch-32 inference throughput.

    python3 -m venv .venv-tf && .venv-tf/bin/pip install tensorflow-cpu numpy
    cargo build --release
    .venv-tf/bin/python scripts/bench_train_tf.py [PETAL_BINARY]

TensorFlow's convolutions and matrix products (oneDNN) use the best instruction set the processor
has. To time both as an AVX2-only processor runs them, cap oneDNN and take petal's AVX2-only build:

    cargo build --release --no-default-features --target-dir target-avx2
    ONEDNN_MAX_CPU_ISA=AVX2 PETAL_LEVELS=avx2 .venv-tf/bin/python scripts/bench_train_tf.py \
        target-avx2/release/petal

ROUNDS=N alternates N times (default 2) and keeps each one's best.
"""
import os
import re
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402
import keras  # noqa: E402
from keras import layers  # noqa: E402


def tutorial_model():
    model = keras.Sequential([
        keras.Input(shape=(180, 180, 3)),
        layers.Rescaling(1.0 / 255),
        layers.Conv2D(16, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(),
        layers.Conv2D(32, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(),
        layers.Conv2D(64, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dense(5),
    ])
    model.compile(optimizer="adam",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def tensorflow_figures(steps=20, runs=50):
    model = tutorial_model()
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(32, 180, 180, 3)).astype("float32")
    y = rng.integers(0, 5, size=(32,)).astype("int32")
    for _ in range(2):
        model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    train = 32 * steps / (time.perf_counter() - start)

    one = x[:1]
    infer = model.make_predict_function()  # noqa: F841 (builds the graph once)
    for _ in range(3):
        model.predict_on_batch(one)
    latencies = []
    for _ in range(runs):
        start = time.perf_counter()
        model.predict_on_batch(one)
        latencies.append((time.perf_counter() - start) * 1e3)
    latency = float(np.median(latencies))
    model.predict_on_batch(x)
    rounds = max(3, runs // 10)
    start = time.perf_counter()
    for _ in range(rounds):
        model.predict_on_batch(x)
    throughput = 32 * rounds / (time.perf_counter() - start)
    return train, latency, throughput


def petal_figures(petal, level):
    env = dict(os.environ, PETAL_SIMD=level)
    run = lambda *args: subprocess.run([petal, *args], check=True, capture_output=True, text=True, env=env).stdout
    train_out, infer_out = run("bench", "train"), run("bench", "infer")
    train = float(re.search(r"([0-9.]+) images/s", train_out).group(1))
    latency = float(re.search(r"batch 1: ([0-9.]+) ms median", infer_out).group(1))
    throughput = float(re.search(r"batch 32: ([0-9.]+) images/s", infer_out).group(1))
    return train, latency, throughput


def levels_here(petal):
    """The SIMD levels this processor runs (petal refuses the others), best first."""
    wanted = os.environ.get("PETAL_LEVELS", "avx512,avx2,scalar").split(",")
    ok = lambda level: subprocess.run([petal, "summary", "--preset", "tutorial"], capture_output=True,
                                      env=dict(os.environ, PETAL_SIMD=level)).returncode == 0
    return [level for level in wanted if ok(level)]


def main():
    petal = sys.argv[1] if len(sys.argv) > 1 else "target/release/petal"
    levels = levels_here(petal)
    # Alternate TensorFlow and petal at every level twice and keep each one's best: this shared
    # machine's speed drifts.
    best = {name: [0.0, float("inf"), 0.0] for name in ["tf", *levels]}
    for _ in range(int(os.environ.get("ROUNDS", "2"))):
        for name in best:
            figures = tensorflow_figures() if name == "tf" else petal_figures(petal, name)
            best[name][0] = max(best[name][0], figures[0])
            best[name][1] = min(best[name][1], figures[1])
            best[name][2] = max(best[name][2], figures[2])
    tf = best["tf"]
    tf_version = __import__("tensorflow").__version__
    header = "".join(f"{'petal ' + level:>14}{'/ TF':>7}" for level in levels)
    print(f"TensorFlow's oneDNN instruction set: {os.environ.get('ONEDNN_MAX_CPU_ISA', 'the best this processor has')}")
    print(f"{'':30}{'TensorFlow ' + tf_version:>18}{header}")
    rows = [("training, images/s", 0, "{:.1f}", lambda p, t: p / t),
            ("batch-1 inference, ms", 1, "{:.2f}", lambda p, t: t / p),
            ("batch-32 inference, images/s", 2, "{:.0f}", lambda p, t: p / t)]
    for label, i, fmt, speedup in rows:
        cells = "".join(f"{fmt.format(best[l][i]):>14}{speedup(best[l][i], tf[i]):>6.2f}x" for l in levels)
        print(f"{label:30}{fmt.format(tf[i]):>18}{cells}")


if __name__ == "__main__":
    main()
