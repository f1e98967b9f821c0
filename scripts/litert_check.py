"""Runs a .tflite file with TensorFlow's own runtime (LiteRT), for petal's interop test.

Loads the model with `ai_edge_litert.interpreter.Interpreter`, prints `get_signature_list()` as
JSON on the first line, runs every image of INPUTS (raw little-endian float32, NHWC, batch-1
images one after the other) through the signature runner one at a time, and writes the outputs
to OUTPUTS (raw little-endian float32). The last line gives LiteRT's median batch-1 latency.

    python scripts/litert_check.py model.tflite inputs.f32 outputs.f32

Needs `pip install ai-edge-litert numpy`.
"""
import json
import sys
import time

import numpy as np
from ai_edge_litert.interpreter import Interpreter


def main(model_path, inputs_path, outputs_path):
    interpreter = Interpreter(model_path=model_path)
    signatures = interpreter.get_signature_list()
    print(json.dumps(signatures, sort_keys=True))
    (key,) = signatures.keys()
    runner = interpreter.get_signature_runner(key)
    (input_name,) = signatures[key]["inputs"]
    (output_name,) = signatures[key]["outputs"]
    shape = runner.get_input_details()[input_name]["shape"]
    images = np.fromfile(inputs_path, dtype="<f4").reshape(-1, *shape[1:])
    outputs = [runner(**{input_name: image[None]})[output_name] for image in images]
    np.concatenate(outputs).astype("<f4").tofile(outputs_path)

    latencies = []
    for _ in range(30):
        start = time.perf_counter()
        runner(**{input_name: images[:1]})
        latencies.append((time.perf_counter() - start) * 1e3)
    print(f"LiteRT batch-1 latency: {np.median(latencies):.2f} ms median over {len(latencies)} runs")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
