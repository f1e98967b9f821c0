"""Writes the image-classifier families petal's interpreter must run, as TensorFlow 2.21's
converter makes them, with LiteRT's reference-kernel outputs as goldens.

Families (Keras applications with `weights=None`, small widths at 96x96; stand-ins of the same
layer kinds where the smallest real network is large):
  mobilenet_v1      keras.applications.MobileNet(alpha=0.25)
  mobilenet_v2      keras.applications.MobileNetV2(alpha=0.25)
  mobilenet_v3s     keras.applications.MobileNetV3Small(alpha=0.35) (hard-swish, squeeze-excite)
  mobilenet_v3l     keras.applications.MobileNetV3Large(alpha=0.25), include_top=False + Dense
  efficientnet_mini EfficientNet's layer kinds: rescaling, normalization, swish, MBConv with
                    squeeze-excite and residual, global pooling
  resnet_mini       ResNet50's layer kinds: zero padding, 7x7/2 conv, 3x3/2 max-pool,
                    bottleneck blocks with projection and identity shortcuts
The widths keep the committed files small. Each is fitted briefly on the flower photos (so
activations are realistic), then converted in each form asked for (--forms, default all):
  float32   no optimization
  float16   `supported_types = [tf.float16]`
  dynamic   dynamic-range quantization (`Optimize.DEFAULT`): int8 weights, float activations
  int8      full-integer quantization calibrated on 100 training photos, float input and output
  uint8     the same with uint8 input and output (`inference_input_type = tf.uint8`)

Outputs, in OUT_DIR:
  <family>_<form>.tflite
  photos_96.npy      uint8 [3, 96, 96, 3]: three flower photos, resized as Keras does
  GOLDEN (families.json by default): per file, the input transform (x = pixel * scale +
                     offset, then quantized as the input tensor says for uint8 inputs), the op
                     list, and LiteRT's outputs and logits (the final SOFTMAX's input tensor, as
                     stored: int8 in quantized files) with the BUILTIN_REF resolver for each photo

    .venv-tf/bin/python scripts/make_tflite_family_fixtures.py ../shared/datasets/flower_photos tests/golden/tflite/families
    .venv-tf/bin/python scripts/make_tflite_family_fixtures.py ../shared/datasets/flower_photos tests/golden/tflite/families --forms dynamic,int8,uint8 --golden quantized.json
"""
import argparse
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402
from keras import layers  # noqa: E402
from ai_edge_litert.interpreter import Interpreter, OpResolverType  # noqa: E402

SIZE = 96
CLASSES = 5
FIT_IMAGES = 320
# x = pixel * scale + offset: what each family expects of its input.
MINUS_ONE_TO_ONE = (1 / 127.5, -1.0)
RAW = (1.0, 0.0)


def head(x):
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(x)
    return layers.Dense(CLASSES, activation="softmax")(x)


def mobilenet_v1():
    return keras.applications.MobileNet(
        input_shape=(SIZE, SIZE, 3), alpha=0.25, weights=None, classes=CLASSES), MINUS_ONE_TO_ONE


def mobilenet_v2():
    return keras.applications.MobileNetV2(
        input_shape=(SIZE, SIZE, 3), alpha=0.25, weights=None, classes=CLASSES), MINUS_ONE_TO_ONE


def mobilenet_v3s():
    return keras.applications.MobileNetV3Small(
        input_shape=(SIZE, SIZE, 3), alpha=0.35, weights=None, classes=CLASSES), RAW


def mobilenet_v3l():
    base = keras.applications.MobileNetV3Large(
        input_shape=(SIZE, SIZE, 3), alpha=0.25, weights=None, include_top=False)
    return keras.Model(base.input, head(base.output)), RAW


def conv_bn(x, filters, kernel, strides=1, activation=None, padding="same"):
    x = layers.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.Activation(activation)(x) if activation else x


def mbconv(x, expand, filters, kernel, strides):
    inputs, channels = x, x.shape[-1]
    if expand != 1:
        x = conv_bn(x, channels * expand, 1, activation="swish")
    x = layers.DepthwiseConv2D(kernel, strides=strides, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("swish")(x)
    squeezed = layers.GlobalAveragePooling2D(keepdims=True)(x)
    squeezed = layers.Conv2D(max(1, channels // 4), 1, activation="swish")(squeezed)
    squeezed = layers.Conv2D(x.shape[-1], 1, activation="sigmoid")(squeezed)
    x = layers.Multiply()([x, squeezed])
    x = conv_bn(x, filters, 1)
    if strides == 1 and channels == filters:
        x = layers.Dropout(0.1)(x)
        x = layers.Add()([x, inputs])
    return x


def efficientnet_mini():
    inputs = keras.Input((SIZE, SIZE, 3))
    x = layers.Rescaling(1 / 255)(inputs)
    x = layers.Normalization(mean=[0.485, 0.456, 0.406], variance=[0.052, 0.050, 0.051])(x)
    x = conv_bn(x, 16, 3, strides=2, activation="swish")
    x = mbconv(x, 1, 16, 3, 1)
    x = mbconv(x, 4, 24, 3, 2)
    x = mbconv(x, 4, 24, 3, 1)
    x = mbconv(x, 4, 40, 5, 2)
    x = mbconv(x, 4, 40, 5, 1)
    x = conv_bn(x, 128, 1, activation="swish")
    return keras.Model(inputs, head(x)), RAW


def bottleneck(x, filters, strides, project):
    shortcut = conv_bn(x, filters * 4, 1, strides=strides) if project else x
    x = conv_bn(x, filters, 1, strides=strides, activation="relu")
    x = conv_bn(x, filters, 3, activation="relu")
    x = conv_bn(x, filters * 4, 1)
    return layers.Activation("relu")(layers.Add()([shortcut, x]))


def resnet_mini():
    inputs = keras.Input((SIZE, SIZE, 3))
    x = layers.ZeroPadding2D(3)(inputs)
    x = conv_bn(x, 16, 7, strides=2, activation="relu", padding="valid")
    x = layers.ZeroPadding2D(1)(x)
    x = layers.MaxPooling2D(3, strides=2)(x)
    x = bottleneck(x, 8, 1, True)
    x = bottleneck(x, 8, 1, False)
    x = bottleneck(x, 16, 2, True)
    x = bottleneck(x, 16, 1, False)
    return keras.Model(inputs, head(x)), MINUS_ONE_TO_ONE


FAMILIES = {
    "mobilenet_v1": mobilenet_v1,
    "mobilenet_v2": mobilenet_v2,
    "mobilenet_v3s": mobilenet_v3s,
    "mobilenet_v3l": mobilenet_v3l,
    "efficientnet_mini": efficientnet_mini,
    "resnet_mini": resnet_mini,
}


def photos(flowers, count, seed):
    files = sorted(
        os.path.join(root, f) for root, _, names in os.walk(flowers) for f in names
        if f.endswith(".jpg"))
    picked = np.random.RandomState(seed).choice(len(files), count, replace=False)
    labels = sorted(os.listdir(flowers))
    images, classes = [], []
    for i in picked:
        image = tf.io.decode_jpeg(tf.io.read_file(files[i]), channels=3)
        images.append(tf.image.resize(image, (SIZE, SIZE)).numpy())
        classes.append(labels.index(os.path.basename(os.path.dirname(files[i]))))
    return np.stack(images), np.array(classes)


def calibrate_batch_norm(model, x):
    """A short fit leaves BatchNormalization's moving statistics near their initial values, and
    the network then answers the same for every photo. One pass in training mode with momentum 0
    sets them to the statistics of real photos."""
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum = 0.0
    model(x, training=True)


FORMS = ("float32", "float16", "dynamic", "int8", "uint8")
# uint8 I/O differs from int8 only in the QUANTIZE at each end: two families keep the committed
# fixtures small.
UINT8_FAMILIES = ("mobilenet_v2", "resnet_mini")
CALIBRATION_IMAGES = 100


def convert(model, kind, calibration):
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if kind != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if kind == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if kind in ("int8", "uint8"):
        converter.representative_dataset = lambda: ([x[None]] for x in calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if kind == "uint8":
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8
    return converter.convert()


def quantize_input(x, detail):
    """What petal (and LiteRT's QUANTIZE) does to a float input: round half away from zero."""
    scale, zero_point = detail["quantization"]
    steps = (x / np.float32(scale)).astype(np.float64)  # divided in float32, as LiteRT does
    rounded = np.sign(steps) * np.floor(np.abs(steps) + 0.5)  # exact in float64
    info = np.iinfo(detail["dtype"])
    return np.clip(rounded + zero_point, info.min, info.max).astype(detail["dtype"])


def reference_outputs(data, inputs):
    """LiteRT's outputs, and the logits (the final SOFTMAX's input), which show differences the
    softmax would squash."""
    interpreter = Interpreter(
        model_content=data, experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
        experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    (input_detail,) = interpreter.get_input_details()
    (output_detail,) = interpreter.get_output_details()
    ops = interpreter._get_ops_details()
    (softmax,) = [op for op in ops if op["op_name"] == "SOFTMAX"]
    logits_tensor = int(softmax["inputs"][0])
    outputs, logits = [], []
    for x in inputs:
        x = x[None].astype(np.float32)
        if input_detail["dtype"] != np.float32:
            x = quantize_input(x, input_detail)
        interpreter.set_tensor(input_detail["index"], x)
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(output_detail["index"])[0].tolist())
        logits.append(interpreter.get_tensor(logits_tensor)[0].tolist())
    return {"ops": [op["op_name"] for op in ops], "outputs": outputs,
            "logits_tensor": logits_tensor, "logits": logits}


def main(flowers, out_dir, forms, golden_name):
    os.makedirs(out_dir, exist_ok=True)
    train_x, train_y = photos(flowers, FIT_IMAGES, 1)
    test_x, _ = photos(flowers, 3, 2)
    test_u8 = np.clip(np.round(test_x), 0, 255).astype(np.uint8)
    np.save(os.path.join(out_dir, f"photos_{SIZE}.npy"), test_u8)
    golden = {}
    for name, make in FAMILIES.items():
        keras.utils.set_random_seed(11)
        model, (scale, offset) = make()
        model.compile(optimizer=keras.optimizers.Adam(1e-3),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(train_x * scale + offset, train_y, batch_size=32, epochs=4, verbose=0)
        calibrate_batch_norm(model, train_x * scale + offset)
        inputs = test_u8.astype(np.float32) * np.float32(scale) + np.float32(offset)
        calibration = (train_x[:CALIBRATION_IMAGES] * scale + offset).astype(np.float32)
        for kind in forms:
            if kind == "uint8" and name not in UINT8_FAMILIES:
                continue
            data = convert(model, kind, calibration)
            file = f"{name}_{kind}.tflite"
            with open(os.path.join(out_dir, file), "wb") as f:
                f.write(data)
            golden[file] = {"input_scale": scale, "input_offset": offset,
                            **reference_outputs(data, inputs)}
            logits = np.array(golden[file]["logits"], dtype=np.float64)
            spread = np.abs(logits[0] - logits[1]).max() / np.abs(logits).max()
            assert spread > 1e-2, f"{file}: the photos' logits barely differ ({spread})"
            print(f"{file}: {len(data)} bytes, {len(golden[file]['ops'])} ops", flush=True)
    with open(os.path.join(out_dir, golden_name), "w") as f:
        json.dump(golden, f, indent=1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("flowers")
    parser.add_argument("out_dir")
    parser.add_argument("--forms", default=",".join(FORMS))
    parser.add_argument("--golden", default="families.json")
    args = parser.parse_args()
    forms = args.forms.split(",")
    assert all(f in FORMS for f in forms), f"forms are {FORMS}"
    main(args.flowers, args.out_dir, forms, args.golden)
