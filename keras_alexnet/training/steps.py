"""The compiled train and eval steps, run with `strategy.run` on every strategy.

The paper's weight decay goes through the momentum: `v <- 0.9 v - 0.0005 lr w
- lr grad; w <- w + v`, on the kernels (not the biases). That is momentum SGD on
the gradient of `loss + 0.0005 * sum(w^2) / 2`; `PaperMomentum` applies exactly
that rule, one XLA kernel per variable. `keras.optimizers.SGD(weight_decay=...)`
would be decoupled decay, outside the momentum: not the paper's rule.
"""
import keras
import tensorflow as tf

from keras_alexnet import evaluation
from keras_alexnet import model as model_lib


@tf.function(jit_compile=True)
def _momentum_update(variable, accumulator, gradient, learning_rate, momentum, weight_decay):
    """The paper's update on resource handles: v <- m v - lr (g + wd w); w <- w + v.

    The scalars come in the variables' dtype; the gradient may be bfloat16 (_uncast) and is
    converted here, inside the kernel.
    """
    dtype = learning_rate.dtype
    gradient = tf.cast(gradient, dtype)
    w = tf.raw_ops.ReadVariableOp(resource=variable, dtype=dtype)
    v = tf.raw_ops.ReadVariableOp(resource=accumulator, dtype=dtype)
    v = momentum * v - learning_rate * (gradient + weight_decay * w)
    tf.raw_ops.AssignVariableOp(resource=accumulator, value=v)
    tf.raw_ops.AssignVariableOp(resource=variable, value=w + v)


@tf.function(jit_compile=True)
def _plain_update(variable, gradient, learning_rate, weight_decay):
    """Without momentum: w <- w - lr (g + wd w); dtypes as in _momentum_update."""
    w = tf.raw_ops.ReadVariableOp(resource=variable, dtype=learning_rate.dtype)
    gradient = tf.cast(gradient, learning_rate.dtype)
    tf.raw_ops.AssignVariableOp(resource=variable,
                                value=w - learning_rate * (gradient + weight_decay * w))


def is_decayed(variable):
    """True for the weights the paper's weight decay applies to: every kernel, no bias
    (cuda-convnet decayed weights only)."""
    return variable.path.endswith("kernel")


def decayed_variables(model):
    """The weights the paper's weight decay applies to: every kernel, no bias."""
    return [v for v in model.trainable_variables if is_decayed(v)]


def _handle(variable):
    """The resource handle of a Keras or TensorFlow variable; inside a distribution
    strategy's update() that of the replica's own copy."""
    if isinstance(variable, keras.Variable):
        variable = variable.value
    return variable.handle


class PaperMomentum(keras.optimizers.SGD):
    """Momentum SGD with the paper's weight decay inside the momentum.

    v <- momentum v - lr (grad + weight_decay w); w <- w + v, with weight_decay on the kernels
    only (is_decayed). The same update as keras.optimizers.SGD on the gradient of the
    loss plus an L2 term (tests/test_train.py checks it against the paper's formula), as one
    XLA kernel per variable: one pass over the weights instead of the six of SGD's update
    and the L2 term's gradient (fc6 alone has 38M weights). Same variables and checkpoints
    as keras.optimizers.SGD.
    """

    def __init__(self, learning_rate=0.01, momentum=0.9, weight_decay=0.0, **kwargs):
        # weight_decay is the paper's (through the momentum), not keras.optimizers.SGD's.
        if kwargs.get("nesterov"):
            raise ValueError("PaperMomentum: the paper's momentum is not Nesterov's")
        super().__init__(learning_rate=learning_rate, momentum=momentum, **kwargs)
        self.paper_weight_decay = float(weight_decay)
        self._decayed_keys = set()

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._decayed_keys = {self._var_key(v) for v in variables if is_decayed(v)}

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        decay = self.paper_weight_decay if self._var_key(variable) in self._decayed_keys else 0.0
        learning_rate = tf.cast(learning_rate, dtype)
        decay = tf.constant(decay, dtype)
        if self.momentum:
            accumulator = self.momentums[self._get_variable_index(variable)]
            _momentum_update(_handle(variable), _handle(accumulator), gradient, learning_rate,
                             tf.constant(self.momentum, dtype), decay)
        else:
            _plain_update(_handle(variable), gradient, learning_rate, decay)

    def get_config(self):
        config = super().get_config()
        config["weight_decay"] = self.paper_weight_decay
        return config


def build_model(config):
    """The network a config trains: model.build_model(config.model), LRN as config.fused_lrn
    says. The caller sets the precision policy."""
    return model_lib.build_model(config.model, fused_lrn=config.fused_lrn)


def paper_momentum(optimizer):
    """The PaperMomentum inside optimizer (as is, or under loss scaling), else None."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    return inner if isinstance(inner, PaperMomentum) else None


def make_optimizer(config, precision):
    """The paper's momentum and weight decay at the schedule's rate; loss scaling under float16."""
    optimizer = PaperMomentum(learning_rate=config.optimizer.learning_rate,
                              momentum=config.optimizer.momentum,
                              weight_decay=config.optimizer.weight_decay)
    if precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def l2_penalty(variables, weight_decay):
    """weight_decay * sum(w^2) / 2: its gradient is weight_decay * w, the paper's decay term."""
    if not variables or not weight_decay:
        return tf.constant(0.0, tf.float32)
    return weight_decay * tf.add_n([tf.nn.l2_loss(tf.cast(v, tf.float32)) for v in variables])


def _uncast(gradient):
    """The bfloat16 tensor a gradient was cast to float32 from, else the gradient as is.

    Under mixed_bfloat16 each variable is read through a cast to bfloat16, so its gradient
    arrives as bfloat16 cast back to float32: for fc6 a pass writing 38M float32 values that
    the update reads again. PaperMomentum converts inside its update kernel instead (the
    same float32 values).
    """
    op = getattr(gradient, "op", None)  # graph tensors only (the step is a tf.function)
    if op is not None and op.type == "Cast" and op.inputs[0].dtype == tf.bfloat16:
        return op.inputs[0]
    return gradient


def make_train_step(model, optimizer, strategy, *, global_batch_size, weight_decay,
                    jit_compile=False):
    """A tf.function taking (iterator, stop flag[, num_steps]); returns global sums over its steps.

    `train_step(iterator, stop, num_steps)` runs num_steps (a scalar tensor; 1 if omitted)
    training steps in one call, a loop inside the graph (config.steps_per_loop amortizes
    the host's dispatch), and returns (sum of the steps' losses, sum of correct
    predictions, sum of stop flags) as tensors: nothing is read back to the host until the
    caller converts them. A prediction is correct by evaluation.top_k_hits (a tie with the
    label is a miss), as in validation. The loss is averaged over the global batch
    (gradients are summed across replicas), and the L2 term is split across replicas so
    that it counts once.
    The stop flag (SIGTERM on any worker) is summed across workers so that all of them
    stop at the same step. jit_compile: XLA for the per-replica step (forward, gradient,
    update), as Keras's own trainer compiles it; meant for GPUs.

    weight_decay: the paper's decay. A PaperMomentum optimizer (make_optimizer) applies it in
    its update and must have been built with the same value; any other optimizer gets it as
    an L2 term in the loss, which has the same gradient.
    """
    paper = paper_momentum(optimizer)
    if paper is not None and paper.paper_weight_decay != weight_decay:
        raise ValueError(f"make_train_step: weight_decay={weight_decay} but the optimizer "
                         f"applies {paper.paper_weight_decay}")
    decayed = decayed_variables(model) if paper is None else []
    scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    replicas = strategy.num_replicas_in_sync
    # PaperMomentum takes bfloat16 gradients as they are (_uncast); not across replicas,
    # where they are summed first (in float32), nor under loss scaling, which divides them.
    uncast = paper is not None and not scaled and replicas == 1

    def step_fn(images, labels, stop):
        with tf.GradientTape() as tape:
            # Logits are float32 under every policy (fc8 computes in float32);
            # the cast keeps the loss in float32 if that ever changes.
            logits = tf.cast(model(images, training=True), tf.float32)
            per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch_size)
            # Empty for PaperMomentum, which decays in its update.
            total = loss + l2_penalty(decayed, weight_decay) / replicas
            if scaled:
                total = optimizer.scale_loss(total)
        grads = tape.gradient(total, model.trainable_variables)
        if uncast:
            grads = [_uncast(g) for g in grads]
        optimizer.apply(grads, model.trainable_variables)
        # evaluation's rule, as in validation: a tie with the label is a miss (a dead network
        # scores 0, not 1 / classes).
        correct = tf.reduce_sum(tf.cast(evaluation.top_k_hits(logits, labels, 1), tf.float32))
        return loss, correct, tf.identity(stop)

    if jit_compile:
        step_fn = tf.function(step_fn, jit_compile=True)

    def one_step(iterator, stop):
        images, labels = next(iterator)
        loss, correct, stop = strategy.run(step_fn, args=(images, labels, stop))
        # Summed over every replica of every worker: one SIGTERM stops them all.
        return (strategy.reduce("sum", loss, axis=None),
                strategy.reduce("sum", correct, axis=None),
                strategy.reduce("sum", stop, axis=None))

    @tf.function
    def train_step(iterator, stop, num_steps=None):
        if num_steps is None:
            return one_step(iterator, stop)
        sums = (tf.constant(0.0), tf.constant(0.0), tf.constant(0.0))
        for _ in tf.range(num_steps):
            sums = tuple(a + tf.cast(b, tf.float32) for a, b in zip(sums, one_step(iterator, stop)))
        return sums

    return train_step


def make_eval_step(model, strategy, *, num_classes):
    """A tf.function on (one distributed batch, stop flag); returns global (top-1 hits, top-5 hits,
    count, stop flags).

    Centre-crop batches are [B, S, S, 3], ten-crop ones [B, 10, S, S, 3]: the batch's rank
    says which. Give each kind a step of its own (reduce_retracing would relax a second
    rank to an unknown one). Probabilities and hits are
    evaluation.py's, as in bin/evaluate and the export. A replica may get an
    empty final batch.
    """
    k = min(5, num_classes)

    def hits(images, labels):
        probs = evaluation.class_probabilities(lambda x: model(x, training=False), images)
        top1 = tf.reduce_sum(tf.cast(evaluation.top_k_hits(probs, labels, 1), tf.float32))
        top5 = tf.reduce_sum(tf.cast(evaluation.top_k_hits(probs, labels, k), tf.float32))
        return top1, top5

    def step_fn(images, labels, stop):
        count = tf.shape(labels)[0]
        # The last batch does not always reach every replica; an empty one must
        # not go through the model (the towers cannot split a placeholder shape).
        top1, top5 = tf.cond(count > 0, lambda: hits(images, labels),
                             lambda: (tf.constant(0.0), tf.constant(0.0)))
        return top1, top5, tf.cast(count, tf.float32), tf.identity(stop)

    @tf.function(reduce_retracing=True)
    def eval_step(batch, stop=None):
        images, labels = batch
        stop = tf.constant(0.0) if stop is None else stop
        results = strategy.run(step_fn, args=(images, labels, stop))
        # The stop flag is summed like the train step's: every worker stops at the same batch.
        return tuple(strategy.reduce("sum", r, axis=None) for r in results)

    return eval_step


def evaluate(eval_step, dataset, bar=None, stop=None):
    """Runs eval_step over a whole distributed dataset; returns (top-1 error, top-5 error, n).

    bar: a progress.ProgressBar counting images (with the running top-1 error), or None.
    stop: a function telling whether this process was asked to stop (a signal); if any
    worker was, the pass ends after the current batch and None is returned.
    """
    top1 = top5 = count = 0.0
    for batch in dataset:
        flag = tf.constant(1.0 if stop is not None and stop() else 0.0)
        a, b, n, stopped = (float(x) for x in eval_step(batch, flag))
        if stopped > 0:
            return None
        top1, top5, count = top1 + a, top5 + b, count + n
        if bar is not None and count:
            bar.update(int(count), top1_error=round(1.0 - top1 / count, 4))
    if not count:
        raise ValueError("the evaluation split is empty")
    if bar is not None:
        bar.update(int(count), final=True, top1_error=round(1.0 - top1 / count, 4))
    return 1.0 - top1 / count, 1.0 - top5 / count, int(count)
