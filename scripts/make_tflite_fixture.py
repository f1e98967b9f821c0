"""Writes the TensorFlow-converted TFLite fixture for petal's interpreter tests.

The tutorial's model (Rescaling, three Conv2D/MaxPooling2D blocks, Flatten, Dense(128),
Dense(5)) at 64x64 input, seeded weights with non-zero biases, converted by TensorFlow's own
converter (`tf.lite.TFLiteConverter.from_keras_model`), then run by LiteRT on three fixed inputs.

- tests/golden/tflite/tutorial64_tf.tflite: the converted model.
- tests/golden/tflite/tutorial64_tf.json: the op list, the signature, and LiteRT's outputs for
  the inputs `pixel(n, i) = (i * 7919 + n * 104729) % 256` (n: sample, i: NHWC index).

    .venv-tf/bin/python scripts/make_tflite_fixture.py tests/golden/tflite
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402

SIZE = 64
CLASSES = 5
SAMPLES = 3


def fixed_input(n):
    i = np.arange(SIZE * SIZE * 3, dtype=np.int64)
    return ((i * 7919 + n * 104729) % 256).astype(np.float32).reshape(1, SIZE, SIZE, 3)


def main(out_dir):
    keras.utils.set_random_seed(7)
    model = keras.Sequential([
        keras.Input(shape=(SIZE, SIZE, 3)),
        keras.layers.Rescaling(1.0 / 255),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Dropout(0.2),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(CLASSES),
    ])
    rng = np.random.default_rng(7)
    # Keras starts biases at zero; random ones make the test see whether biases are applied.
    for layer in model.layers:
        weights = layer.get_weights()
        if len(weights) == 2:
            layer.set_weights([weights[0], rng.normal(0, 0.05, weights[1].shape).astype(np.float32)])

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    data = converter.convert()
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "tutorial64_tf.tflite")
    with open(path, "wb") as f:
        f.write(data)

    interpreter = Interpreter(model_path=path)
    ops = sorted({op["op_name"] for op in interpreter._get_ops_details()})
    signatures = interpreter.get_signature_list()
    (name,) = signatures.keys()
    runner = interpreter.get_signature_runner(name)
    (input_name,) = signatures[name]["inputs"]
    (output_name,) = signatures[name]["outputs"]
    outputs = []
    for n in range(SAMPLES):
        result = runner(**{input_name: fixed_input(n)})[output_name]
        keras_out = model(fixed_input(n), training=False).numpy()
        print(f"sample {n}: LiteRT vs Keras max abs diff {np.abs(result - keras_out).max():.2e}")
        outputs.append([float(v) for v in result.reshape(-1)])
    with open(os.path.join(out_dir, "tutorial64_tf.json"), "w") as f:
        json.dump({
            "tensorflow": tf.__version__,
            "ops": ops,
            "signatures": signatures,
            "outputs": outputs,
        }, f, indent=1)
        f.write("\n")
    print(f"{path}: {len(data)} bytes, ops {ops}, signatures {signatures}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/golden/tflite")
