"""Full-size image classifiers, converted by TensorFlow 2.21, run by petal (`petal tflite run`)
and by LiteRT: petal against LiteRT's reference kernels (BUILTIN_REF), and LiteRT's default
resolver (XNNPACK) against the same reference, so petal's agreement can be read against the
noise floor LiteRT itself has.

Families at 224x224 with their standard tops (1000 classes) ending in logits, not softmax (a
softmax over 1000 classes would hide differences), `weights=None` (no internet for ImageNet
weights), BatchNormalization statistics set from flower photos so activations are
realistic: MobileNet, MobileNetV2, MobileNetV3Small, MobileNetV3Large, EfficientNetB0, ResNet50;
in each form asked for (--forms): float32, float16, dynamic (dynamic-range), int8 (full
integer, float input and output) and uint8 (full integer, uint8 input and output), the integer
forms calibrated on 50 other photos.

    .venv-tf/bin/python scripts/compare_tflite_litert.py ../shared/datasets/flower_photos \\
        --petal target/release/petal --photos 30 --work /tmp/petal-compare
    .venv-tf/bin/python scripts/compare_tflite_litert.py ../shared/datasets/flower_photos \\
        --forms dynamic,int8,uint8 --photos 10

Prints, per file: the worst relative error (max |petal - ref| / max(1, max |ref|) per photo),
top-1 agreement with the reference, and the same two figures for XNNPACK; for the integer
forms also the largest difference in output quanta (petal's outputs are LiteRT's reference
integers, so 0).
"""
import argparse
import os
import subprocess

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402
from ai_edge_litert.interpreter import Interpreter, OpResolverType  # noqa: E402

SIZE = 224
MINUS_ONE_TO_ONE = (1 / 127.5, -1.0)
RAW = (1.0, 0.0)
CAFFE = None  # ResNet50: BGR with ImageNet means subtracted

# MobileNetV3 takes any image size unless told: a fixed one keeps every file's shapes static.
LOGITS = {"weights": None, "classifier_activation": None, "input_shape": (SIZE, SIZE, 3)}
FAMILIES = {
    "mobilenet": (lambda: keras.applications.MobileNet(**LOGITS), MINUS_ONE_TO_ONE),
    "mobilenet_v2": (lambda: keras.applications.MobileNetV2(**LOGITS), MINUS_ONE_TO_ONE),
    "mobilenet_v3_small": (lambda: keras.applications.MobileNetV3Small(**LOGITS), RAW),
    "mobilenet_v3_large": (lambda: keras.applications.MobileNetV3Large(**LOGITS), RAW),
    "efficientnet_b0": (lambda: keras.applications.EfficientNetB0(**LOGITS), RAW),
    "resnet50": (lambda: keras.applications.ResNet50(**LOGITS), CAFFE),
}


FORMS = ("float32", "float16", "dynamic", "int8", "uint8")
CALIBRATION_PHOTOS = 50


def photos(flowers, count, seed=5):
    files = sorted(os.path.join(r, f) for r, _, names in os.walk(flowers) for f in names
                   if f.endswith(".jpg"))
    picked = np.random.RandomState(seed).choice(len(files), count, replace=False)
    return np.stack([
        tf.image.resize(tf.io.decode_jpeg(tf.io.read_file(files[i]), channels=3),
                        (SIZE, SIZE)).numpy() for i in picked])


def prepare(x, transform):
    if transform is CAFFE:
        return keras.applications.resnet50.preprocess_input(x.copy())
    scale, offset = transform
    return (x * np.float32(scale) + np.float32(offset)).astype(np.float32)


def calibrate_batch_norm(model, x):
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0
    model(x, training=True)


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


def stored_input(path, x):
    """`x` as the file's input stores it: quantized (half away from zero) for uint8 inputs,
    as petal and LiteRT's QUANTIZE round."""
    (detail,) = Interpreter(model_path=path).get_input_details()
    if detail["dtype"] == np.float32:
        return x
    scale, zero_point = detail["quantization"]
    steps = (x / np.float32(scale)).astype(np.float64)
    rounded = np.sign(steps) * np.floor(np.abs(steps) + 0.5)
    info = np.iinfo(detail["dtype"])
    return np.clip(rounded + zero_point, info.min, info.max).astype(detail["dtype"])


def litert(path, x, resolver):
    kwargs = {"num_threads": 2}
    if resolver == "ref":
        kwargs = {"experimental_op_resolver_type": OpResolverType.BUILTIN_REF}
    interpreter = Interpreter(model_path=path, **kwargs)
    interpreter.allocate_tensors()
    (inp,) = interpreter.get_input_details()
    (out,) = interpreter.get_output_details()
    results = []
    for image in x:
        interpreter.set_tensor(inp["index"], image[None])
        interpreter.invoke()
        results.append(interpreter.get_tensor(out["index"])[0].copy())
    return np.stack(results)


def petal(binary, path, x, work):
    np.save(os.path.join(work, "x.npy"), x)
    subprocess.run([binary, "tflite", "run", path, "--input", os.path.join(work, "x.npy"),
                    "--out", os.path.join(work, "out")], check=True, capture_output=True)
    (name,) = os.listdir(os.path.join(work, "out"))
    y = np.load(os.path.join(work, "out", name))
    os.remove(os.path.join(work, "out", name))
    return y


def agreement(got, ref):
    got, ref = got.astype(np.float64), ref.astype(np.float64)
    errors = [np.abs(g - r).max() / max(1.0, np.abs(r).max()) for g, r in zip(got, ref)]
    same = int((got.argmax(1) == ref.argmax(1)).sum())
    return max(errors), same


def quanta(got, ref, path):
    """The largest difference in output steps, for files whose output is integer or
    dequantized from integers."""
    interpreter = Interpreter(model_path=path)
    (detail,) = interpreter.get_output_details()
    if detail["dtype"] != np.float32:
        return int(np.abs(got.astype(np.int64) - ref.astype(np.int64)).max())
    dequantize = [op for op in interpreter._get_ops_details() if op["op_name"] == "DEQUANTIZE"]
    if not dequantize:
        return None
    scale = interpreter.get_tensor_details()[dequantize[-1]["inputs"][0]]["quantization"][0]
    return int(np.round(np.abs(got - ref).max() / scale))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("flowers")
    parser.add_argument("--petal", default="target/release/petal")
    parser.add_argument("--photos", type=int, default=30)
    parser.add_argument("--work", default="/tmp/petal-compare")
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--forms", default="float32,float16")
    args = parser.parse_args()
    forms = args.forms.split(",")
    assert all(f in FORMS for f in forms), f"forms are {FORMS}"
    os.makedirs(args.work, exist_ok=True)
    images = photos(args.flowers, args.photos)
    calibration_images = photos(args.flowers, CALIBRATION_PHOTOS, seed=6)
    for name in args.families.split(","):
        make, transform = FAMILIES[name]
        keras.utils.set_random_seed(3)
        model = make()
        x = prepare(images, transform)
        calibrate_batch_norm(model, x)
        calibration = prepare(calibration_images, transform)
        for kind in forms:
            path = os.path.join(args.work, f"{name}_{kind}.tflite")
            with open(path, "wb") as f:
                f.write(convert(model, kind, calibration))
            x = stored_input(path, prepare(images, transform))
            try:
                ref = litert(path, x, "ref")
                xnnpack = litert(path, x, "default")
            except RuntimeError as e:
                print(f"{name} {kind}: LiteRT fails: {str(e).strip()}", flush=True)
                continue
            try:
                ours = petal(args.petal, path, x, args.work)
                error, same = agreement(ours, ref)
                petal_text = f"petal vs ref: error {error:.1e}, top-1 {same}/{len(x)}"
                if kind in ("int8", "uint8"):
                    petal_text += f", {quanta(ours, ref, path)} quanta apart"
            except subprocess.CalledProcessError as e:
                petal_text = f"petal failed: {e.stderr.decode().strip()}"
            x_error, x_same = agreement(xnnpack, ref)
            x_text = f"XNNPACK vs ref: error {x_error:.1e}, top-1 {x_same}/{len(x)}"
            if kind in ("int8", "uint8"):
                x_text += f", {quanta(xnnpack, ref, path)} quanta apart"
            print(f"{name} {kind}: {petal_text}; {x_text}", flush=True)


if __name__ == "__main__":
    main()
