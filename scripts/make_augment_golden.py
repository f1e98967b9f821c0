"""Golden outputs of Keras's geometric augmentation layers with pinned factors.

Each case is a layer whose factor range is a single value, so its draw is certain; the Rust
test `tests/augment_golden.rs` builds the same layer from the same JSON and compares.
Run: /path/to/venv/bin/python scripts/make_augment_golden.py > tests/golden/augment_keras.jsonl
"""
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402
import keras  # noqa: E402


def image(height, width, channels):
    values = (np.arange(height * width * channels) * 37 % 101).astype("float32")
    return values.reshape(height, width, channels)


CASES = [
    # (layer type, keras arguments, image shape)
    ("RandomRotation", dict(factor=[0.25, 0.25], fill_mode=m, interpolation=i, fill_value=7.0), (5, 7, 2))
    for m in ("reflect", "wrap", "constant", "nearest")
    for i in ("bilinear", "nearest")
] + [
    ("RandomRotation", dict(factor=[0.1, 0.1]), (9, 11, 1)),
    ("RandomRotation", dict(factor=[-0.3, -0.3], fill_mode="wrap"), (8, 6, 1)),
    ("RandomZoom", dict(height_factor=[0.5, 0.5], fill_mode="constant"), (8, 8, 1)),
    ("RandomZoom", dict(height_factor=[-0.5, -0.5]), (8, 8, 1)),
    ("RandomZoom", dict(height_factor=[0.3, 0.3], width_factor=[-0.2, -0.2], fill_mode="nearest"), (6, 9, 3)),
    ("RandomZoom", dict(height_factor=[0.9, 0.9], fill_mode="reflect", interpolation="nearest"), (5, 5, 1)),
    ("RandomTranslation", dict(height_factor=[0.2, 0.2], width_factor=[-0.3, -0.3]), (10, 10, 1)),
    ("RandomTranslation", dict(height_factor=[-0.45, -0.45], width_factor=[0.6, 0.6], fill_mode="wrap"), (6, 7, 2)),
    ("RandomTranslation", dict(height_factor=[0.5, 0.5], width_factor=[0.5, 0.5], fill_mode="constant", fill_value=-1.0), (4, 4, 1)),
]


def checkerboard_zoom_case():
    board = np.indices((8, 8)).sum(axis=0) % 2 * 255.0
    return board[..., None].astype("float32")


def main():
    for kind, args, shape in CASES:
        layer = getattr(keras.layers, kind)(**args)
        x = image(*shape)
        if kind == "RandomZoom" and shape == (8, 8, 1):
            x = checkerboard_zoom_case()
        y = np.asarray(layer(x[None], training=True))[0]
        config = {"type": kind, **args}
        print(json.dumps({"layer": config, "shape": list(shape),
                          "input": x.ravel().tolist(), "output": y.ravel().tolist()}))


if __name__ == "__main__":
    main()
