"""Writes small `.tflite` files of the kinds TensorFlow's converter makes beyond plain float32,
for `petal tflite info` to describe (petal's interpreter does not run them yet):

- tests/golden/tflite/tiny_float16.tflite: float16 weights (`target_spec.supported_types`),
  dequantized by DEQUANTIZE ops.
- tests/golden/tflite/tiny_dynamic_range.tflite: int8 weights, float activations
  (`Optimize.DEFAULT` without a representative data set).
- tests/golden/tflite/tiny_int8.tflite: full-integer int8 with uint8 input and output
  (representative data set, `inference_input_type = tf.uint8`): per-channel weight scales.

The model: Conv2D(8, 3×3, ReLU6) on 8×8×3, DepthwiseConv2D, global average pooling, Dense(128),
Dense(3), softmax — seeded; the Dense(128) has the 1,024 weights below which the converter
leaves a tensor in float.

    .venv-tf/bin/python scripts/make_tflite_quantized_fixtures.py tests/golden/tflite
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402


def model():
    keras.utils.set_random_seed(3)
    return keras.Sequential([
        keras.Input(shape=(8, 8, 3)),
        keras.layers.Conv2D(8, 3, padding="same", activation="relu6"),
        keras.layers.DepthwiseConv2D(3, padding="same", activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(3, activation="softmax"),
    ])


def representative():
    rng = np.random.RandomState(0)
    for _ in range(20):
        yield [rng.uniform(0, 1, size=(1, 8, 8, 3)).astype(np.float32)]


def convert(m, kind):
    converter = tf.lite.TFLiteConverter.from_keras_model(m)
    if kind == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif kind == "dynamic_range":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif kind == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8
    return converter.convert()


def main(out_dir):
    m = model()
    for kind in ("float16", "dynamic_range", "int8"):
        data = convert(m, kind)
        path = os.path.join(out_dir, f"tiny_{kind}.tflite")
        with open(path, "wb") as f:
            f.write(data)
        print(f"{path}: {len(data)} bytes")


if __name__ == "__main__":
    main(sys.argv[1])
