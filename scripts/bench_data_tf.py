"""Times TensorFlow's `image_dataset_from_directory` reading, decoding and resizing every image
of a folder once (one epoch, no cache), then petal's `bench data` on the same folder, and prints
both figures and their ratio. More petal builds may be named as NAME=PATH (say, an older
build) to time them in the same alternation.

    python3 -m venv .venv-tf && .venv-tf/bin/pip install tensorflow-cpu numpy
    cargo build --release
    .venv-tf/bin/python scripts/bench_data_tf.py ../shared/datasets/flower_photos [NAME=PATH ...]
"""
import os
import re
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf  # noqa: E402


def tensorflow_images_per_second(directory):
    ds = tf.keras.utils.image_dataset_from_directory(
        directory, image_size=(180, 180), batch_size=32, shuffle=False, verbose=False)
    ds = ds.prefetch(tf.data.AUTOTUNE)
    start = time.perf_counter()
    n = sum(int(images.shape[0]) for images, _ in ds)
    return n / (time.perf_counter() - start)


def petal_images_per_second(directory, petal):
    out = subprocess.run([petal, "bench", "data", directory],
                         check=True, capture_output=True, text=True).stdout
    return float(re.search(r"([0-9.]+) images/s", out).group(1))


def main():
    directory = sys.argv[1]
    builds = [a.split("=", 1) for a in sys.argv[2:]] or [["petal", "target/release/petal"]]
    # Timings on a shared machine drift by tens of percent: alternate them all and keep each
    # one's best epoch.
    tf_best = 0.0
    best = {name: 0.0 for name, _ in builds}
    for _ in range(3):
        tf_best = max(tf_best, tensorflow_images_per_second(directory))
        for name, path in builds:
            best[name] = max(best[name], petal_images_per_second(directory, path))
    print(f"TensorFlow {tf.__version__} image_dataset_from_directory: {tf_best:.0f} images/s")
    for name, _ in builds:
        print(f"{name} bench data: {best[name]:.0f} images/s ({best[name] / tf_best:.2f}x TensorFlow)")


if __name__ == "__main__":
    main()
