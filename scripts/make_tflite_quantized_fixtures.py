"""Writes small `.tflite` files of the kinds TensorFlow's converter makes beyond plain float32:

- tests/golden/tflite/tiny_float16.tflite: float16 weights (`target_spec.supported_types`),
  dequantized by DEQUANTIZE ops.
- tests/golden/tflite/tiny_dynamic_range.tflite: int8 weights, float activations
  (`Optimize.DEFAULT` without a representative data set).
- tests/golden/tflite/tiny_int8.tflite: full-integer int8 with uint8 input and output
  (representative data set, `inference_input_type = tf.uint8`): per-channel weight scales.

- tests/golden/tflite/hybrid_chain.tflite and hybrid_chain.json: dynamic-range CONV_2D,
  DEPTHWISE_CONV_2D and FULLY_CONNECTED, each large enough to be quantized and each fed by
  another or by the input, with LiteRT's reference outputs (BUILTIN_REF) for two inputs. Hybrid
  ops quantize their float input at run time, so a last-bit difference in a float op before
  one changes its scale and the model's output by up to a few percent (LiteRT's own XNNPACK
  differs from its reference kernels so): with no float op in the chain, petal must agree.

- tests/golden/tflite/legacy_uint8.tflite and legacy_uint8.json: a TensorFlow 1 graph with
  fake-quantization ops (as quantization-aware training leaves them), converted by
  `tf.compat.v1`'s converter to uint8 throughout: uint8 weights with zero point 128, CONV_2D,
  DEPTHWISE_CONV_2D, MEAN, FULLY_CONNECTED, SOFTMAX, no signature; LiteRT's reference outputs
  for 8 random inputs.

The tiny model: Conv2D(8, 3×3, ReLU6) on 8×8×3, DepthwiseConv2D, global average pooling,
Dense(128), Dense(3), softmax — seeded; the Dense(128) has the 1,024 weights below which the
converter leaves a tensor in float.

    .venv-tf/bin/python scripts/make_tflite_quantized_fixtures.py tests/golden/tflite
"""
import json
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


def hybrid_chain():
    keras.utils.set_random_seed(5)
    return keras.Sequential([
        keras.Input(shape=(10, 10, 8)),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu6"),
        keras.layers.Conv2D(128, 1),
        keras.layers.DepthwiseConv2D(3, strides=2, padding="same", activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(10),
    ])


def reference_outputs(data, inputs):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    interpreter = Interpreter(
        model_content=data, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interpreter.allocate_tensors()
    (input_detail,) = interpreter.get_input_details()
    (output_detail,) = interpreter.get_output_details()
    outputs = []
    for x in inputs:
        interpreter.set_tensor(input_detail["index"], x[None])
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(output_detail["index"])[0].tolist())
    return outputs


def write_hybrid_chain(out_dir):
    data = convert(hybrid_chain(), "dynamic_range")
    with open(os.path.join(out_dir, "hybrid_chain.tflite"), "wb") as f:
        f.write(data)
    rng = np.random.RandomState(1)
    inputs = [rng.uniform(-1, 2, size=(10, 10, 8)).astype(np.float32) for _ in range(2)]
    golden = {"inputs": [x.ravel().tolist() for x in inputs],
              "outputs": reference_outputs(data, inputs)}
    with open(os.path.join(out_dir, "hybrid_chain.json"), "w") as f:
        json.dump(golden, f)
    print(f"hybrid_chain.tflite: {len(data)} bytes")


def legacy_uint8():
    """A TensorFlow 1 graph with fake quantization, converted to uint8 as TF 1 did."""
    tf1 = tf.compat.v1
    fake = tf1.quantization.fake_quant_with_min_max_args
    rng = np.random.RandomState(0)
    weights = lambda *shape: fake(tf1.constant(  # noqa: E731
        rng.uniform(-0.5, 0.5, shape).astype(np.float32)), min=-0.5, max=0.5)
    with tf1.Graph().as_default() as graph:
        x = tf1.placeholder(tf.float32, [1, 8, 8, 3], name="input")
        y = tf1.nn.conv2d(fake(x, min=-1.0, max=1.0), weights(3, 3, 3, 8), strides=1,
                          padding="SAME")
        bias = tf1.constant(rng.uniform(-0.1, 0.1, 8).astype(np.float32))
        y = fake(tf1.nn.relu6(tf1.nn.bias_add(y, bias)), min=0.0, max=6.0)
        y = fake(tf1.nn.depthwise_conv2d(y, weights(3, 3, 8, 1), strides=[1, 2, 2, 1],
                                         padding="SAME"), min=-4.0, max=4.0)
        y = fake(tf1.reduce_mean(y, axis=[1, 2]), min=-2.0, max=2.0)
        y = fake(tf1.matmul(y, weights(8, 4)), min=-2.0, max=2.0)
        y = fake(tf1.nn.softmax(y), min=0.0, max=255 / 256, name="output")
        with tf1.Session(graph=graph) as session:
            converter = tf1.lite.TFLiteConverter.from_session(session, [x], [y])
            converter.inference_type = tf.uint8
            converter.quantized_input_stats = {"input": (127.5, 127.5)}
            return converter.convert()


def write_legacy_uint8(out_dir):
    data = legacy_uint8()
    with open(os.path.join(out_dir, "legacy_uint8.tflite"), "wb") as f:
        f.write(data)
    rng = np.random.RandomState(2)
    inputs = [rng.randint(0, 256, size=(8, 8, 3)).astype(np.uint8) for _ in range(8)]
    golden = {"inputs": [x.ravel().tolist() for x in inputs],
              "outputs": reference_outputs(data, inputs)}
    with open(os.path.join(out_dir, "legacy_uint8.json"), "w") as f:
        json.dump(golden, f)
    print(f"legacy_uint8.tflite: {len(data)} bytes")


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
    write_hybrid_chain(out_dir)
    write_legacy_uint8(out_dir)


if __name__ == "__main__":
    main(sys.argv[1])
