"""The tutorial's first model trained with Keras's model.fit on flower_photos, as the tutorial does
it (cache, shuffle(1000), prefetch(AUTOTUNE)), printing each epoch's time and the final
accuracies: the end-to-end baseline for `petal train --preset tutorial`.

    .venv-tf/bin/python scripts/fit_tf.py ../shared/datasets/flower_photos [EPOCHS]
    /usr/bin/time -v ... also gives TensorFlow's peak memory (Maximum resident set size).
"""
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from bench_train_tf import tutorial_model  # noqa: E402


class EpochTimer(tf.keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        print(f"epoch {epoch + 1}: {time.perf_counter() - self.start:.1f} s", flush=True)


def main():
    directory = sys.argv[1]
    epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    train, val = tf.keras.utils.image_dataset_from_directory(
        directory, validation_split=0.2, subset="both", seed=123, image_size=(180, 180), batch_size=32)
    autotune = tf.data.AUTOTUNE
    train = train.cache().shuffle(1000).prefetch(buffer_size=autotune)
    val = val.cache().prefetch(buffer_size=autotune)
    history = tutorial_model().fit(train, validation_data=val, epochs=epochs, callbacks=[EpochTimer()], verbose=2)
    h = history.history
    print(f"final val_accuracy {h['val_accuracy'][-1]:.3f} (best {max(h['val_accuracy']):.3f}), "
          f"accuracy {h['accuracy'][-1]:.3f}")


if __name__ == "__main__":
    main()
