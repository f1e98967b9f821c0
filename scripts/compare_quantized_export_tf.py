"""petal's quantized exports against TensorFlow's converter on the same trained model.

Loads a model `petal train` wrote (MODEL.safetensors: the tutorial's layers, weights and
config), rebuilds it in Keras with those weights, converts it with `tf.lite.TFLiteConverter` in
the four forms (float32; float16; dynamic range; int8 calibrated on the first 200 images of the
training split, seed 123, as `petal export --quantize int8` takes them), and has petal export
the same four. Then, for every file: its size, and its validation accuracy in LiteRT (default
resolver) over the validation split of PHOTOS, decoded and resized by TensorFlow as Keras does.

    .venv-tf/bin/python scripts/compare_quantized_export_tf.py MODEL.safetensors PHOTOS OUTDIR \
        [--petal target/release/petal] [--calibration-count 200]

Needs `pip install tensorflow-cpu ai-edge-litert numpy`.
"""
import argparse
import json
import os
import struct
import subprocess

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402

FORMS = ["float32", "float16", "dynamic", "int8"]
AUGMENTATION = {"RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation",
                "RandomContrast", "RandomBrightness"}


def read_petal_model(path):
    data = open(path, "rb").read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    body = data[8 + length:]
    config = json.loads(header["__metadata__"]["config"])
    weights = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        weights[name] = np.frombuffer(body[start:end], "<f4").reshape(info["shape"])
    return config, weights


def keras_model(config, weights):
    layers = [keras.Input(shape=tuple(config["input_shape"]))]
    for layer in config["layers"]:
        kind, name = layer["type"], layer["name"]
        if kind in AUGMENTATION:
            continue  # identity at inference
        if kind == "Rescaling":
            layers.append(keras.layers.Rescaling(layer["scale"], layer["offset"], name=name))
        elif kind == "Conv2D":
            layers.append(keras.layers.Conv2D(
                layer["filters"], tuple(layer["kernel_size"]), strides=tuple(layer["strides"]),
                padding=layer["padding"], activation=layer["activation"],
                use_bias=layer["use_bias"], name=name))
        elif kind == "MaxPooling2D":
            layers.append(keras.layers.MaxPooling2D(
                tuple(layer["pool_size"]), strides=tuple(layer["strides"]),
                padding=layer["padding"], name=name))
        elif kind == "Dropout":
            layers.append(keras.layers.Dropout(layer["rate"], name=name))
        elif kind == "Flatten":
            layers.append(keras.layers.Flatten(name=name))
        elif kind == "Dense":
            layers.append(keras.layers.Dense(
                layer["units"], activation=layer["activation"], use_bias=layer["use_bias"],
                name=name))
        else:
            raise SystemExit(f"layer type {kind} is not handled by this script")
    model = keras.Sequential(layers)
    for layer in model.layers:
        names = [f"{layer.name}/kernel", f"{layer.name}/bias"]
        if names[0] in weights:
            layer.set_weights([weights[n] for n in names if n in weights])
    return model


def split_files(photos, size, subset):
    dataset = keras.utils.image_dataset_from_directory(
        photos, validation_split=0.2, subset=subset, seed=123, image_size=size,
        batch_size=None, verbose=False)
    return dataset.file_paths, dataset.class_names


def load(path, size):
    image = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
    return tf.image.resize(image, size).numpy()[None].astype(np.float32)


def convert(model, form, calibration):
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if form != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if form == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if form == "int8":
        converter.representative_dataset = lambda: ([x] for x in calibration)
    return converter.convert()


def litert_accuracy(path, images, labels):
    interpreter = Interpreter(model_path=path, num_threads=2)
    runner = interpreter.get_signature_runner()
    input_name = next(iter(runner.get_input_details()))
    details = runner.get_input_details()[input_name]
    output_details = next(iter(runner.get_output_details().values()))
    correct = 0
    for image, label in zip(images, labels):
        x = image
        if details["dtype"] != np.float32:
            scale, zero = details["quantization"]
            x = np.clip(np.round(image / scale + zero), -128, 127).astype(details["dtype"])
        (out,) = runner(**{input_name: x}).values()
        if output_details["dtype"] != np.float32:
            scale, zero = output_details["quantization"]
            out = (out.astype(np.float32) - zero) * scale
        correct += int(np.argmax(out) == label)
    return correct / len(labels)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("photos")
    parser.add_argument("out")
    parser.add_argument("--petal", default="target/release/petal")
    parser.add_argument("--calibration-count", type=int, default=200)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    config, weights = read_petal_model(args.model)
    size = tuple(config["input_shape"][:2])
    model = keras_model(config, weights)

    training, class_names = split_files(args.photos, size, "training")
    calibration = [load(p, size) for p in training[:args.calibration_count]]
    validation, _ = split_files(args.photos, size, "validation")
    labels = [class_names.index(os.path.basename(os.path.dirname(p))) for p in validation]
    images = [load(p, size) for p in validation]

    rows = []
    for form in FORMS:
        tf_path = os.path.join(args.out, f"tf_{form}.tflite")
        with open(tf_path, "wb") as f:
            f.write(convert(model, form, calibration))
        petal_path = os.path.join(args.out, f"petal_{form}.tflite")
        command = [args.petal, "export", args.model, "--out", petal_path]
        if form != "float32":
            command += ["--quantize", form]
        if form == "int8":
            command += ["--calibration", args.photos,
                        "--calibration-count", str(args.calibration_count)]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        for who, path in (("TensorFlow", tf_path), ("petal", petal_path)):
            rows.append((form, who, os.path.getsize(path), litert_accuracy(path, images, labels)))
            print(f"{form:8} {who:10} {rows[-1][2]:>10,} bytes  "
                  f"LiteRT validation accuracy {rows[-1][3]:.4f}", flush=True)
    print(json.dumps([dict(zip(("form", "converter", "bytes", "litert_accuracy"), r))
                      for r in rows]))


if __name__ == "__main__":
    main()
