"""Writes golden pixels: what TensorFlow's Keras loader makes of a few flower photos and of a
small synthetic image, for petal's decode and resize tests.

- tests/golden/tf_pixels/*.png: `_load_image_tf` of Keras 3 (decode_image, then tf.image.resize
  or smart_resize for crop_to_aspect_ratio) at 180x180, rounded to 8 bits.
- tests/golden/resize_tf.txt: tf.image.resize of a 7x11x3 image to several sizes, as floats.

It prints the mean absolute difference between TensorFlow's float pixels and their 8-bit
rounding, which is all that separates petal's pixels from TensorFlow's when the test passes.

    .venv-tf/bin/python scripts/make_pixel_golden.py ../shared/datasets/flower_photos tests/golden
"""
import glob
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras.src.utils import image_utils  # noqa: E402
from keras.src.backend import tensorflow as tf_backend  # noqa: E402

SIZE = (180, 180)


def keras_load(path, interpolation="bilinear", crop=False):
    img = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    if crop:
        return image_utils.smart_resize(img, SIZE, interpolation=interpolation,
                                        backend_module=tf_backend).numpy()
    return tf.image.resize(img, SIZE, method=interpolation).numpy()


def flower_cases(directory):
    classes = sorted(d for d in os.listdir(directory) if not d.startswith("."))
    firsts = [sorted(glob.glob(os.path.join(directory, c, "*.jpg")))[0] for c in classes]
    cases = [(p, "bilinear", False) for p in firsts]
    cases.append((firsts[0], "nearest", False))
    cases.append((firsts[1], "bilinear", True))
    return cases


def write_flowers(directory, out_dir):
    os.makedirs(os.path.join(out_dir, "tf_pixels"), exist_ok=True)
    diffs = []
    for path, interpolation, crop in flower_cases(directory):
        values = keras_load(path, interpolation, crop)
        rounded = np.floor(values + 0.5).astype(np.uint8)
        diffs.append(np.abs(values - rounded).mean())
        rel = os.path.relpath(path, directory)
        name = rel.replace("/", "__").rsplit(".", 1)[0]
        name += f"__{interpolation}{'__crop' if crop else ''}.png"
        tf.io.write_file(os.path.join(out_dir, "tf_pixels", name), tf.io.encode_png(rounded))
    print(f"mean |TensorFlow float - 8-bit rounding| = {np.mean(diffs):.4f}")


def write_resize(out_dir):
    rng = np.random.RandomState(0)
    src = rng.randint(0, 256, size=(7, 11, 3)).astype(np.uint8)
    with open(os.path.join(out_dir, "resize_tf.txt"), "w") as f:
        f.write("# tf.image.resize of a 7x11x3 uint8 image (first line), float32 results\n")
        f.write("input 7 11 " + " ".join(map(str, src.flatten())) + "\n")
        for method in ("bilinear", "nearest"):
            for h, w in ((4, 5), (15, 23), (3, 20), (7, 11), (1, 1)):
                out = tf.image.resize(src, (h, w), method=method).numpy()
                f.write(f"{method} {h} {w} " + " ".join(f"{v:.6f}" for v in out.flatten()) + "\n")


if __name__ == "__main__":
    write_flowers(sys.argv[1], sys.argv[2])
    write_resize(sys.argv[2])
