"""Writes the golden files petal's JPEG decoder is tested against: TensorFlow's own pixels.

- tests/golden/jpeg/*.jpg: small JPEGs of every kind the decoder handles (sampling factors,
  progressive, restart markers, gray, RGB, CMYK, sequential scans one component at a time) and
  kinds it must refuse, cut from a flower photo. Made with libjpeg-turbo's cjpeg (Debian
  package libjpeg-turbo-progs) and Pillow (CMYK).
- tests/golden/jpeg/tf_decode.txt: for each fixture and for every flower photo, the SHA-256
  (first 16 hex digits) of TensorFlow's `tf.io.decode_image` pixels with 3 and with 1 channel,
  or "error" where TensorFlow refuses the file.

    .venv-tf/bin/python scripts/make_jpeg_golden.py ../shared/datasets/flower_photos tests/golden/jpeg
"""
import glob
import hashlib
import io
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image  # noqa: E402

# (file name, cjpeg options) for the source crop; odd sizes exercise the partial MCUs.
CJPEG_FIXTURES = [
    ("baseline_420.jpg", ["-quality", "85"]),
    ("baseline_422.jpg", ["-quality", "85", "-sample", "2x1"]),
    ("baseline_440.jpg", ["-quality", "85", "-sample", "1x2"]),
    ("baseline_444.jpg", ["-quality", "85", "-sample", "1x1"]),
    ("baseline_411.jpg", ["-quality", "85", "-sample", "4x1"]),
    ("quality_100.jpg", ["-quality", "100", "-sample", "1x1"]),
    ("quality_5.jpg", ["-quality", "5"]),
    ("gray.jpg", ["-grayscale"]),
    ("rgb.jpg", ["-rgb"]),
    ("optimized_huffman.jpg", ["-optimize"]),
    ("progressive_420.jpg", ["-progressive"]),
    ("progressive_gray.jpg", ["-progressive", "-grayscale"]),
    ("restart_every_3_mcus.jpg", ["-restart", "3B"]),
    ("progressive_restarts.jpg", ["-progressive", "-restart", "2B"]),
    ("arithmetic.jpg", ["-arithmetic"]),
]

# Sequential scans of one component each: the decoder keeps coefficients until all are read.
SEQUENTIAL_SCANS = "0;\n1;\n2;\n"


def crop(directory, width, height):
    first = sorted(glob.glob(os.path.join(directory, "daisy", "*.jpg")))[0]
    pixels = tf.io.decode_image(tf.io.read_file(first), channels=3).numpy()
    return pixels[40:40 + height, 60:60 + width]


def cjpeg(pixels, options):
    with tempfile.TemporaryDirectory() as tmp:
        ppm = os.path.join(tmp, "in.ppm")
        Image.fromarray(pixels).save(ppm)
        return subprocess.run(["cjpeg", *options, ppm], check=True, capture_output=True).stdout


def make_fixtures(directory, out_dir):
    pixels = crop(directory, 75, 53)
    fixtures = {name: cjpeg(pixels, options) for name, options in CJPEG_FIXTURES}
    fixtures["tiny_3x20.jpg"] = cjpeg(crop(directory, 3, 20), ["-quality", "90"])
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as scans:
        scans.write(SEQUENTIAL_SCANS)
        scans.flush()
        fixtures["one_component_per_scan.jpg"] = cjpeg(pixels, ["-scans", scans.name])
    cmyk = io.BytesIO()
    Image.fromarray(pixels).convert("CMYK").save(cmyk, "JPEG", quality=90)
    fixtures["cmyk_adobe.jpg"] = cmyk.getvalue()
    progressive = fixtures["progressive_420.jpg"]
    fixtures["progressive_cut.jpg"] = progressive[: len(progressive) * 2 // 3]
    baseline = fixtures["baseline_420.jpg"]
    fixtures["baseline_cut.jpg"] = baseline[: len(baseline) * 2 // 3]
    # Damage TensorFlow decodes through: a lost restart marker (libjpeg resynchronises at the
    # next one) and a single-scan file whose end is cut inside a segment after its scan.
    restarts = fixtures["restart_every_3_mcus.jpg"]
    second_rst = [i for i in range(len(restarts) - 1)
                  if restarts[i] == 0xFF and 0xD0 <= restarts[i + 1] <= 0xD7][1]
    fixtures["restart_marker_lost.jpg"] = (
        restarts[:second_rst] + b"\x00" + restarts[second_rst + 1:])
    fixtures["cut_after_the_scan.jpg"] = baseline[:-2] + b"\xff\xe1\x01\x00Exif"
    for name, data in fixtures.items():
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(data)
    return sorted(fixtures)


def tf_hash(data, channels):
    try:
        pixels = tf.io.decode_image(data, channels=channels, expand_animations=False).numpy()
    except tf.errors.OpError:
        return "error"
    return hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest()[:16]


def main(directory, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    names = make_fixtures(directory, out_dir)
    lines = []
    for name in names:
        data = open(os.path.join(out_dir, name), "rb").read()
        lines.append(f"fixture {name} {tf_hash(data, 3)} {tf_hash(data, 1)}")
    photos = sorted(glob.glob(os.path.join(directory, "*", "*.jpg")))
    for path in photos:
        data = open(path, "rb").read()
        lines.append(f"flower {os.path.relpath(path, directory)} {tf_hash(data, 3)} {tf_hash(data, 1)}")
    with open(os.path.join(out_dir, "tf_decode.txt"), "w") as f:
        f.write("# TensorFlow 2.21 tf.io.decode_image: kind, file, sha256[:16] of RGB and of gray pixels\n")
        f.write("\n".join(lines) + "\n")
    print(f"{len(names)} fixtures, {len(photos)} photos")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
