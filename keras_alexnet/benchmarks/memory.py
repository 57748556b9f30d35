"""Peak memory of the paper's training step on CPU: `python -m keras_alexnet.train_memory`.

Builds the full AlexNet (the paper's config), its momentum optimizer and the
train step that bin/train runs, then times and measures a few steps on
synthetic mean-subtracted images. Prints one JSON line: peak RSS of the process
(ru_maxrss) after building and after the steps, and their difference, which is
what one step adds (activations, gradients, the all-reduce buffers).
"""
import argparse
import json
import resource
import time


def _peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def train_step_memory(batch_size=128, image_size=227, precision="float32", steps=3):
    """Returns {peak_rss_mib_after_build, peak_rss_mib_after_steps, step_mib, seconds_per_step}."""
    import numpy as np
    import tensorflow as tf

    from keras_alexnet import config as config_lib
    from keras_alexnet.training import distribute
    from keras_alexnet import model as model_lib
    from keras_alexnet.training import steps as steps_lib

    config = config_lib.get_config()
    config.batch_size = batch_size
    config.model.image_size = image_size
    precision = distribute.set_precision(precision)
    strategy = tf.distribute.get_strategy()
    model = model_lib.build_alexnet(**config.model)
    optimizer = steps_lib.make_optimizer(config, precision)
    optimizer.build(model.trainable_variables)
    rng = np.random.default_rng(0)
    images = rng.normal(0, 60, (batch_size, image_size, image_size, 3)).astype(np.float32)
    labels = rng.integers(0, config.model.num_classes, batch_size).astype(np.int32)
    iterator = iter(tf.data.Dataset.from_tensors((images, labels)).repeat())
    train_step = steps_lib.make_train_step(model, optimizer, strategy, global_batch_size=batch_size,
                                           weight_decay=config.optimizer.weight_decay)
    before = _peak_mib()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        float(train_step(iterator, tf.constant(0.0))[0])
        times.append(time.perf_counter() - start)
    after = _peak_mib()
    return {"batch_size": batch_size, "image_size": image_size, "precision": precision,
            "parameters": int(model.count_params()),
            "peak_rss_mib_after_build": round(before), "peak_rss_mib_after_steps": round(after),
            "step_mib": round(after - before),
            "seconds_per_step_after_first": round(float(np.median(times[1:] or times)), 2)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--image_size", type=int, default=227)
    parser.add_argument("--precision", default="float32")
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(train_step_memory(args.batch_size, args.image_size, args.precision, args.steps)))


if __name__ == "__main__":
    main()
