"""The first training steps, layer by layer: why a network trains or dies before epoch 1 ends.

    bin/first_steps --config=configs/imagenette_paper.py:paper_init \
        --config.input.data_dir=DATA --steps=30 [--config.model.dropout_scaling=inverted] [--out=FILE]

Runs `steps`' loss (softmax cross-entropy + the paper's weight decay) with momentum SGD on
real training batches, one device, and after every step prints one JSON line:

- `loss`: the step's training loss (cross-entropy only);
- `rms`: each layer's output RMS on a fixed batch of training images (eval mode);
- `dead6` / `dead7`: the share of fc6 / fc7 units that are zero on every image of that batch
  (a dead ReLU gets no gradient and stays dead);
- `shared7`: how much of fc7's output is the same for every image: |mean over images|^2 /
  mean |h7|^2 (1 = fc7 ignores the input);
- `stiffness`: lr * E|fc8 input|^2 * lambda, the factor by which one SGD step on fc8 moves
  the logits along the softmax loss's stiffest direction, where lambda is the largest
  eigenvalue of the softmax Hessian diag(p) - p p^T at the batch's mean prediction (about
  1 / classes at the start). Heavy-ball momentum 0.9 is stable below 2 (1 + 0.9) = 3.8;
  above it the logits oscillate with growing amplitude;
- `update`: |w_after - w_before| / |w_before| of each layer's kernel.

docs/RESULTS.md uses it to show why the paper's network died on imagenette. The program
is cli/first_steps.py (programs live in cli/; training/ never imports it).
"""
import numpy as np

PROBED = ("conv1", "pool1", "pool2", "conv3", "conv4", "pool5", "fc6", "fc7", "fc8")
MOMENTUM_STABILITY_LIMIT = 2 * (1 + 0.9)


def softmax_stiffness(mean_probs):
    """Largest eigenvalue of the softmax cross-entropy Hessian diag(p) - p p^T."""
    p = np.asarray(mean_probs, np.float64)
    return float(np.linalg.eigvalsh(np.diag(p) - np.outer(p, p))[-1])


def run(config, num_steps, emit=print):
    """Trains num_steps steps of config's model on its training data; emits one dict a step."""
    import keras
    import tensorflow as tf

    from keras_alexnet import model as model_lib
    from keras_alexnet.data import input_pipeline
    from keras_alexnet.training import steps

    keras.utils.set_random_seed(config.seed)
    dataset = input_pipeline.from_input_config(config, config.input.train_split, config.batch_size,
                                               True, seed=config.seed)
    model = steps.build_model(config)
    probe = keras.Model(model.inputs, [model_lib.activation_output(model, n) for n in PROBED])
    fc8_input = keras.Model(model.inputs, model.get_layer("fc8").input)
    optimizer = keras.optimizers.SGD(config.optimizer.learning_rate,
                                     momentum=config.optimizer.momentum)
    decayed = steps.decayed_variables(model)
    kernels = {v.path: v for v in decayed}
    iterator = iter(dataset)
    fixed_images, _ = next(iterator)

    @tf.function
    def train_step(images, labels):
        with tf.GradientTape() as tape:
            logits = tf.cast(model(images, training=True), tf.float32)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
            total = loss + steps.l2_penalty(decayed, config.optimizer.weight_decay)
        grads = tape.gradient(total, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss, tf.reduce_mean(tf.nn.softmax(logits), axis=0)

    rows = []
    for step in range(1, num_steps + 1):
        images, labels = next(iterator)
        # fc8's input in training mode (dropout as trained): the size of one SGD step on fc8.
        h_train = fc8_input(images, training=True)
        energy = float(tf.reduce_mean(tf.reduce_sum(tf.square(h_train), axis=-1)))
        before = {path: v.numpy() for path, v in kernels.items()}
        loss, mean_probs = train_step(images, labels)
        outputs = dict(zip(PROBED, probe(fixed_images, training=False)))
        fc7 = outputs["fc7"].numpy()
        row = {
            "step": step,
            "loss": round(float(loss), 4),
            "rms": {n: round(float(np.sqrt(np.mean(np.square(t)))), 4) for n, t in outputs.items()},
            "dead6": round(float(np.mean(outputs["fc6"].numpy().max(axis=0) <= 0)), 4),
            "dead7": round(float(np.mean(fc7.max(axis=0) <= 0)), 4),
            "shared7": round(float(np.sum(fc7.mean(axis=0) ** 2) /
                                   max(np.mean(np.sum(fc7 ** 2, axis=-1)), 1e-30)), 4),
            "stiffness": round(config.optimizer.learning_rate * energy *
                               softmax_stiffness(mean_probs.numpy()), 3),
            "update": {path.rsplit("/", 1)[0]: round(float(
                np.linalg.norm(v.numpy() - before[path]) / max(np.linalg.norm(before[path]), 1e-30)), 5)
                for path, v in kernels.items()},
        }
        rows.append(row)
        emit(row)
    return rows
