"""The programs the tests run in fresh child processes, one function each.

Logical CPU devices, multi-worker collectives and signals must be set up before
TensorFlow starts (or in a process of their own): fixtures.child() starts
`python tests/children.py NAME ARGS...`, which calls NAME(*ARGS). Imports stay
inside the functions for that reason.
"""
import sys


def train(config_path, workdir, result_path=None):
    """train_and_evaluate(config, workdir) of a config.json; its result as JSON in result_path."""
    import json
    import ml_collections
    from keras_alexnet.training import train
    config = ml_collections.ConfigDict(json.load(open(config_path)))
    result = train.train_and_evaluate(config, workdir)
    if result_path:
        json.dump(result, open(result_path, "w"))


def mirrored(mode, config_path, workdir, out):
    """Six train steps of the tiny model under `mode` ('default', or 'mirrored' on two logical
    CPUs), then (mirrored) the whole loop; their numbers as JSON in out."""
    import json
    import numpy as np
    import tensorflow as tf
    if mode == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import ml_collections
    from keras_alexnet import config as config_lib
    from keras_alexnet import model as model_lib
    from keras_alexnet.training import steps
    from keras_alexnet.training import train

    rng = np.random.default_rng(0)
    images = rng.normal(0, 60, (6, 16, 67, 67, 3)).astype(np.float32)
    labels = rng.integers(0, 3, (6, 16)).astype(np.int32)
    config = ml_collections.ConfigDict(json.load(open(config_path)))
    if mode == "mirrored":
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        assert strategy.num_replicas_in_sync == 2
    else:
        strategy = tf.distribute.get_strategy()
    with strategy.scope():
        model = model_lib.build_model(dict(config.model, dropout=0.0))  # seeded: same start
        start = float(sum(np.abs(w).sum() for w in model.get_weights()))
        optimizer = steps.make_optimizer(config, "float32")
        optimizer.build(model.trainable_variables)
    step = steps.make_train_step(model, optimizer, strategy, global_batch_size=16,
                                 weight_decay=config.optimizer.weight_decay)
    ds = tf.data.Dataset.from_tensor_slices((images, labels))  # elements are global batches
    it = iter(strategy.experimental_distribute_dataset(ds))
    losses = [float(step(it, tf.constant(0.0))[0]) for _ in range(6)]
    weights = [w.tolist() for w in model.get_weights()[-2:]]  # fc8
    result = odd_batch = None
    if mode == "mirrored":
        # The whole loop too: distributed datasets, the partial last eval batch, checkpoints.
        config.distribution.strategy = "mirrored"
        config.distribution.cpu_devices = 2
        try:
            odd = config.copy_and_resolve_references()
            odd.batch_size = 9
            train.train_and_evaluate(odd, workdir + "-odd")
        except config_lib.ConfigError as e:
            odd_batch = str(e)
        result = train.train_and_evaluate(config, workdir)
    json.dump(dict(start=start, losses=losses, fc8=weights, result=result, odd_batch=odd_batch),
              open(out, "w"))


def dropout(mode, scaling, out):
    """drop6's output on every replica of this worker at each step ('mirrored': two logical
    CPUs; else MultiWorkerMirroredStrategy from TF_CONFIG), for one model built under the
    strategy, then again after rebuilding it (the same seed) and after seek_dropout; the
    batch holds the same images for every replica. As JSON in out."""
    import json
    import tensorflow as tf
    if mode == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    else:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    import keras
    import numpy as np
    from keras_alexnet import layers as layers_lib
    from keras_alexnet import model as model_lib

    replicas = strategy.num_replicas_in_sync
    x = np.random.default_rng(0).normal(0, 60, (4, 67, 67, 3)).astype(np.float32)


    def build():
        with strategy.scope():
            model = model_lib.build_alexnet(num_classes=3, image_size=67, width=0.125, fc_units=64,
                                            init="glorot", seed=0, dropout=0.5,
                                            dropout_scaling=scaling)
        return model, keras.Model(model.inputs, [model.get_layer("fc6").output,
                                                 model.get_layer("drop6").output, model.output])


    def run(model, probe, steps):
        # Every replica's batch is x.
        it = iter(strategy.distribute_datasets_from_function(
            lambda ctx: tf.data.Dataset.from_tensors(x).repeat()))

        @tf.function
        def step(it):
            return strategy.run(lambda im: probe(im, training=True)[:2], args=(next(it),))

        out = []
        for _ in range(steps):
            fc6, drop6 = step(it)
            out.append([dict(fc6=a.numpy().tolist(), drop6=b.numpy().tolist()) for a, b in zip(
                strategy.experimental_local_results(fc6), strategy.experimental_local_results(drop6))])
        return out


    model, probe = build()
    first = run(model, probe, 2)
    again_model, again_probe = build()
    again = run(again_model, again_probe, 2)
    layers_lib.seek_dropout(again_model, 1)
    seeked = run(again_model, again_probe, 1)
    json.dump(dict(replicas=replicas, first=first, again=again, seeked=seeked), open(out, "w"))


def signal_run(config_path, workdir, out, signame, where, call):
    """A run that sends itself `signame` at a chosen point: inside the train step's Nth call
    (`call`; the worst case for the loop: the step was already under way), or in the Nth
    evaluation batch (where != 'train'); its result and the signal's time as JSON in out."""
    import json, os, signal, time
    import ml_collections
    from keras_alexnet.training import steps, train
    config = ml_collections.ConfigDict(json.load(open(config_path)))
    calls, sent = [], {}

    def send():
        sent["time"] = time.time()
        os.kill(os.getpid(), getattr(signal, signame))

    def wrapping(make):
        def make_wrapped(*args, **kwargs):
            step = make(*args, **kwargs)
            def wrapped(*a, **k):
                result = step(*a, **k)
                calls.append(1)
                if len(calls) == int(call):
                    send()
                return result
            return wrapped
        return make_wrapped

    if where == "train":
        steps.make_train_step = wrapping(steps.make_train_step)
    else:
        steps.make_eval_step = wrapping(steps.make_eval_step)
    result = train.train_and_evaluate(config, workdir)
    json.dump(dict(result=result, sent=sent.get("time"), ended=time.time()), open(out, "w"))


if __name__ == "__main__":
    globals()[sys.argv[1]](*sys.argv[2:])
