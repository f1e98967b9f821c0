"""Adds TensorFlow Lite image-classifier metadata to a model, as TF Lite Model Maker and the
metadata writers do: NormalizationOptions (mean, std) on the input, and a labels file packed
into the model (which makes it a zip archive too) for the output. `petal predict` reads both.

    pip install tflite-support==0.4.4   # Python 3.11 or older
    python scripts/add_tflite_metadata.py tests/golden/tflite/families/resnet_mini_float32.tflite \\
        tests/golden/tflite/families/resnet_mini_float32_metadata.tflite \\
        --mean 127.5 --std 127.5 --labels daisy,dandelion,roses,sunflowers,tulips
"""
import argparse
import os
import tempfile

from tflite_support.metadata_writers import image_classifier, writer_utils


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("out")
    parser.add_argument("--mean", type=float, nargs="+", required=True)
    parser.add_argument("--std", type=float, nargs="+", required=True)
    parser.add_argument("--labels", required=True, help="comma-separated class names")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        labels = os.path.join(tmp, "labels.txt")
        with open(labels, "w") as f:
            f.write("\n".join(args.labels.split(",")) + "\n")
        writer = image_classifier.MetadataWriter.create_for_inference(
            writer_utils.load_file(args.model), args.mean, args.std, [labels])
        writer_utils.save_file(writer.populate(), args.out)
    print(f"{args.out}: {os.path.getsize(args.out)} bytes")


if __name__ == "__main__":
    main()
