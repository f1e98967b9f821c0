"""Writes the golden split files that petal's split must reproduce.

Runs Keras's own `image_dataset_from_directory` (TensorFlow backend) on flower_photos and records
the file order of the training and validation subsets for a few seeds and split fractions.

    python3 -m venv .venv-tf && .venv-tf/bin/pip install tensorflow-cpu numpy
    .venv-tf/bin/python scripts/make_split_golden.py ../shared/datasets/flower_photos tests/golden
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras  # noqa: E402

CASES = [(123, 0.2), (42, 0.1), (7, 0.35)]


def main(directory, out_dir):
    for seed, split in CASES:
        train, val = keras.utils.image_dataset_from_directory(
            directory, validation_split=split, subset="both", seed=seed,
            image_size=(180, 180), batch_size=32, verbose=False)
        path = os.path.join(out_dir, f"split_seed{seed}_{split}.txt")
        with open(path, "w") as f:
            f.write(f"# keras {keras.__version__} image_dataset_from_directory(seed={seed}, "
                    f"validation_split={split})\n")
            for name, ds in (("training", train), ("validation", val)):
                f.write(f"[{name}] {len(ds.file_paths)}\n")
                for p in ds.file_paths:
                    f.write(os.path.relpath(p, directory) + "\n")
        print("wrote", path)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
