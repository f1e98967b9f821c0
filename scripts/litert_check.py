"""Runs a .tflite file with TensorFlow's own runtime (LiteRT), for petal's interop test.

Loads the model with `ai_edge_litert.interpreter.Interpreter`, prints `get_signature_list()` as
JSON on the first line, runs every image of INPUTS (raw little-endian float32, NHWC, batch-1
images one after the other) through the signature runner one at a time, and writes the outputs
to OUTPUTS (raw little-endian float32). An int8 or uint8 input is quantized with its scale and
zero point, an int8 or uint8 output dequantized. The last line gives LiteRT's median batch-1
latency. With --reference, LiteRT runs its reference kernels (BUILTIN_REF), whose integer
arithmetic petal's interpreter reproduces exactly, instead of XNNPACK.

    python scripts/litert_check.py [--reference] model.tflite inputs.f32 outputs.f32

Needs `pip install ai-edge-litert numpy`.
"""
import json
import sys
import time

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType


def to_stored(images, details):
    if details["dtype"] == np.float32:
        return images
    scale, zero_point = details["quantization"]
    info = np.iinfo(details["dtype"])
    return np.clip(np.round(images / scale) + zero_point, info.min, info.max).astype(details["dtype"])


def to_real(values, details):
    if details["dtype"] == np.float32:
        return values
    scale, zero_point = details["quantization"]
    return (values.astype(np.float32) - zero_point) * scale


def main(model_path, inputs_path, outputs_path, reference=False):
    resolver = OpResolverType.BUILTIN_REF if reference else OpResolverType.AUTO
    interpreter = Interpreter(model_path=model_path, experimental_op_resolver_type=resolver)
    signatures = interpreter.get_signature_list()
    print(json.dumps(signatures, sort_keys=True))
    (key,) = signatures.keys()
    runner = interpreter.get_signature_runner(key)
    (input_name,) = signatures[key]["inputs"]
    (output_name,) = signatures[key]["outputs"]
    details = runner.get_input_details()[input_name]
    output_details = runner.get_output_details()[output_name]
    images = np.fromfile(inputs_path, dtype="<f4").reshape(-1, *details["shape"][1:])
    images = to_stored(images, details)
    outputs = [runner(**{input_name: image[None]})[output_name] for image in images]
    to_real(np.concatenate(outputs), output_details).astype("<f4").tofile(outputs_path)

    latencies = []
    for _ in range(30):
        start = time.perf_counter()
        runner(**{input_name: images[:1]})
        latencies.append((time.perf_counter() - start) * 1e3)
    print(f"LiteRT batch-1 latency: {np.median(latencies):.2f} ms median over {len(latencies)} runs")


if __name__ == "__main__":
    args = sys.argv[1:]
    reference = "--reference" in args
    args = [a for a in args if a != "--reference"]
    if len(args) != 3:
        sys.exit(__doc__)
    main(*args, reference=reference)
