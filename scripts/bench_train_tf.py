"""Times the tutorial model in TensorFlow/Keras and in petal on this machine, alternately, and
prints both figures and their ratios: training images/s (batch 32, Adam, random data), batch-1
inference latency and batch-32 inference throughput.

    python3 -m venv .venv-tf && .venv-tf/bin/pip install tensorflow-cpu numpy
    cargo build --release
    .venv-tf/bin/python scripts/bench_train_tf.py
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


def petal_figures(petal):
    train_out = subprocess.run([petal, "bench", "train"], check=True, capture_output=True, text=True).stdout
    infer_out = subprocess.run([petal, "bench", "infer"], check=True, capture_output=True, text=True).stdout
    train = float(re.search(r"([0-9.]+) images/s", train_out).group(1))
    latency = float(re.search(r"batch 1: ([0-9.]+) ms median", infer_out).group(1))
    throughput = float(re.search(r"batch 32: ([0-9.]+) images/s", infer_out).group(1))
    return train, latency, throughput


def main():
    petal = sys.argv[1] if len(sys.argv) > 1 else "target/release/petal"
    # Alternate the two twice and keep each one's best: this shared machine's speed drifts.
    best_tf = [0.0, float("inf"), 0.0]
    best_petal = [0.0, float("inf"), 0.0]
    for _ in range(2):
        for best, figures in ((best_tf, tensorflow_figures()), (best_petal, petal_figures(petal))):
            best[0] = max(best[0], figures[0])
            best[1] = min(best[1], figures[1])
            best[2] = max(best[2], figures[2])
    print(f"{'':28}{'TensorFlow ' + keras.__version__:>18}{'petal':>10}{'ratio':>8}")
    print(f"{'training, images/s':28}{best_tf[0]:>18.1f}{best_petal[0]:>10.1f}{best_petal[0] / best_tf[0]:>7.2f}x")
    print(f"{'batch-1 inference, ms':28}{best_tf[1]:>18.2f}{best_petal[1]:>10.2f}{best_tf[1] / best_petal[1]:>7.2f}x")
    print(f"{'batch-32 inference, images/s':28}{best_tf[2]:>18.0f}{best_petal[2]:>10.0f}{best_petal[2] / best_tf[2]:>7.2f}x")


if __name__ == "__main__":
    main()
