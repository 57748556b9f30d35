"""The base training config: the paper's recipe. Every configs/*.py starts from `get_config()`.

Groups: `model` (`name`, the builder in model.BUILDERS, and exactly its keyword
arguments: model.build_model(config.model)), `input`,
`optimizer`, `schedule`, `distribution`, `checkpoint`, `eval`; plus a few
top-level fields. `validate(config)` checks the values that do not need the
data and names the offending field; `train.py` checks the data itself.
"""
import ml_collections

from keras_alexnet import model as model_lib

class ConfigError(ValueError):
    """A config value (or the data or workdir it points at) that cannot work; names the field."""


STRATEGIES = ("auto", "mirrored", "multi_worker", "one_device")
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
CLUSTER_RESOLVERS = ("auto", "tf_config", "slurm")
NORMALIZATIONS = ("mean_image", "channel")
RESIZES = ("shorter_side", "warp")
# 'centre': the central patch, no random crop (the study's no-augmentation variant, Sec. 4.1).
CROPS = ("paper", "inception", "centre")


def get_config():
    """The paper's recipe (its Sec. 5, "Details of learning"): batch 128, momentum 0.9, decay 5e-4, lr 0.01."""
    config = ml_collections.ConfigDict()

    # The network: `name` picks the builder (model.BUILDERS), the other fields are exactly
    # its keyword arguments; training and the export build it with model.build_model(config.model).
    config.model = ml_collections.ConfigDict(dict(
        name=model_lib.DEFAULT_BUILDER, num_classes=1000, image_size=227, towers=2, lrn=True,
        lrn_alpha=model_lib.LRN_ALPHA, lrn_bias=model_lib.LRN_BIAS, lrn_per_tower=True,
        overlapping_pool=True, activation="relu", dropout=0.5, dropout_scaling="paper",
        width=1.0, fc_units=4096, init="paper", init_bias=1.0,
        # "conv3" or "conv4": that middle layer left out (the study's depth variant, Sec. 7).
        drop_conv="", seed=0))

    config.input = ml_collections.ConfigDict(dict(
        # Folder written by bin/make_tfrecords: shards, labels.txt, stats.npz.
        data_dir="",
        # True with an empty data_dir: generate the procedural demo dataset
        # (keras_alexnet/data/demo_data.py) into WORKDIR/demo_data first.
        demo=False,
        train_split="train",
        eval_split="validation",
        # A split with labels evaluated with ten crops at the end (ILSVRC-2010 has one).
        test_split="",
        # 1 for the 1-based labels of the Inception/TPU converters' TFRecords.
        label_offset=0,
        normalization="mean_image",
        crop="paper",
        # How the network's training images were brought to the stored size R (the mean
        # image's side), which serving, bin/predict and the evaluation of an export redo
        # for each image: 'shorter_side' (the paper's and make_tfrecords': shorter side to R,
        # then the central R x R) or 'warp' (Caffe's convert_imageset and classify.py: both
        # sides to R ignoring the aspect ratio, bilinear). Training reads the records as
        # make_tfrecords stored them (shorter side) whatever this says.
        resize="shorter_side",
        # True: the training images were stored re-encoded as JPEG (make_tfrecords does, at
        # its quality), so the export re-encodes each served image the same way before the
        # crop. False: they were stored as decoded pixels (Caffe's LMDB), no re-encode.
        jpeg_reencode=True,
        # Training images mirrored at random (the paper's horizontal reflections); False with
        # crop='centre' trains on the central patch only (Sec. 4.1's "without this scheme").
        flip=True,
        # The std of the paper's PCA lighting coefficients a_i; 0 turns lighting off.
        lighting_std=0.1,
        # 0: the number of training images recorded in stats.npz.
        num_train_examples=0,
        shuffle_buffer=10_000,
        # A tf.data service dispatcher, grpc://HOST:PORT (bin/data_service): its workers read,
        # decode and augment the training images (data/service.py says what changes: the
        # processing mode, determinism, resume). Empty: this host's CPUs, as always.
        data_service="",
        # Demo data only (used when data_dir is empty).
        demo_images_per_class=0,
        demo_image_size=0,
    ))

    # SGD with momentum; the weight decay is the paper's, inside the momentum
    # (v <- 0.9 v - 0.0005 lr w - lr grad), applied to kernels, not biases.
    config.optimizer = ml_collections.ConfigDict(dict(
        learning_rate=0.01, momentum=0.9, weight_decay=0.0005))

    # "divided by 10 when the validation error rate stopped improving", "three
    # times prior to termination". The paper gives no patience; 2 epochs keeps a
    # single noisy epoch from cutting the rate.
    # epochs: () keeps the paper's heuristic; epochs such as (16, 21) (--config.schedule.epochs=16,21)
    # divide the rate after each of them instead, whatever the validation error (for small
    # validation sets, whose noise the heuristic cannot tell from a plateau).
    config.schedule = ml_collections.ConfigDict(dict(
        factor=0.1, patience=2, min_delta=0.0, max_reductions=3, epochs=()))

    config.batch_size = 128  # global: per-replica batch x replicas
    config.num_epochs = 90
    # > 0: stop after this many training steps (a smoke test, bin/benchmark trainer), saving
    # a checkpoint and skipping that epoch's validation; a rerun with a larger value resumes.
    config.max_steps = 0
    config.seed = 0
    config.precision = "auto"

    config.distribution = ml_collections.ConfigDict(dict(
        strategy="auto",
        # multi_worker: where the cluster comes from (TF_CONFIG or SLURM's variables).
        cluster_resolver="auto",
        # mirrored/one_device: explicit devices, e.g. ["/gpu:0", "/gpu:1"]; empty = all GPUs.
        devices=[],
        # >1 splits the CPU into that many logical devices (data-parallel tests on CPU).
        cpu_devices=0,
    ))

    config.checkpoint = ml_collections.ConfigDict(dict(every_steps=1000, max_to_keep=3))

    config.eval = ml_collections.ConfigDict(dict(
        batch_size=128,
        # Ten crops per image: batch_size // 10 images a step keeps memory flat.
        ten_crop=True,
    ))

    # Fine-tuning (training/init_from.py). init_from: a run folder, a checkpoint prefix or
    # folder inside one, an imported run (bin/import_weights) or a .keras file; its weights
    # are copied by layer name before step 0 (a resumed run uses its own checkpoints).
    # The mean image and PCA statistics still come from config.input.data_dir.
    config.init_from = ""
    # Layers not copied (trained from their initialization). Empty: fc8 alone when the class
    # counts differ, nothing otherwise; a list replaces that default (name fc8 in it too).
    config.init_from_skip = []
    # Layers not trained (no update, no weight decay), e.g. ["conv1", "conv2", "conv3",
    # "conv4", "conv5"] to train only the classifier on top of conv5's features.
    config.freeze = []

    config.log_every_steps = 50
    # Training steps per call of the compiled step (a loop inside the graph): amortizes the
    # host's dispatch on fast accelerators. The weights are the same for any value; the host
    # reads the loss, the accuracy and the stop flag every log_every_steps in any case.
    config.steps_per_loop = 1
    # XLA for the per-replica train step (forward, gradient, update). Off by default: meant
    # for GPUs, where its speed-up was not measured (no GPU here); tested for correctness on CPU.
    config.jit_compile = False
    # LRN in training as XLA kernels that compute in float32 and read and write the policy's
    # dtype (layers.py, fused_lrn.py): the same numbers as tf.nn.local_response_normalization
    # within float32 rounding, the two LRN layers faster on CPU (by how much: docs/BENCHMARKS.md).
    # Evaluation and the export always run tf.nn.local_response_normalization. False: that op
    # in training too.
    config.fused_lrn = True
    # 'auto': a live bar on a terminal, a line every log_every_steps otherwise.
    config.progress = "auto"
    # A TensorFlow profiler trace of training steps (first, last), 1-based, both included,
    # into WORKDIR/tensorboard for TensorBoard's Profile tab (training/profile.py):
    # (20, 25), or on the command line --config.profile_steps=20,25; (20,) is step 20 alone.
    # () traces nothing. A resumed run traces only the window's steps it has still to train.
    config.profile_steps = ()
    return config


def _require(condition, field, message):
    if not condition:
        raise ConfigError(f"config.{field}: {message}")


def unknown_fields(config, reference=None, prefix=""):
    """Dotted names of the fields of config that get_config() does not have (typos, mostly)."""
    reference = get_config() if reference is None else reference
    found = []
    for key in config.keys():
        if key not in reference:
            found.append(prefix + key)
        elif hasattr(config[key], "keys") and hasattr(reference[key], "keys") and key != "model":
            found += unknown_fields(config[key], reference[key], f"{prefix}{key}.")
    return found


def validate(config):
    """Fails fast on values that cannot work, naming the field."""
    unknown = sorted(unknown_fields(config))
    if unknown:
        raise ConfigError(f"config.{unknown[0]}: unknown field" + (
            f" (and {', '.join('config.' + u for u in unknown[1:4])})" if len(unknown) > 1 else "")
            + "; a typo? keras_alexnet/config.py lists every field")
    _validate_model(config.model)
    _require(bool(config.input.data_dir) or config.input.demo, "input.data_dir",
             "must be set to a folder written by bin/make_tfrecords "
             "(--config.input.data_dir=/path/to/tfrecords)")
    _require(config.distribution.strategy in STRATEGIES, "distribution.strategy",
             f"unknown strategy {config.distribution.strategy!r}; one of {STRATEGIES}")
    _require(config.distribution.cluster_resolver in CLUSTER_RESOLVERS,
             "distribution.cluster_resolver",
             f"unknown {config.distribution.cluster_resolver!r}; one of {CLUSTER_RESOLVERS}")
    _require(config.precision in PRECISIONS, "precision",
             f"unknown precision {config.precision!r}; one of {PRECISIONS}")
    _require(config.input.normalization in NORMALIZATIONS, "input.normalization",
             f"unknown {config.input.normalization!r}; one of {NORMALIZATIONS}")
    _require(config.input.crop in CROPS, "input.crop",
             f"unknown {config.input.crop!r}; one of {CROPS}")
    _require(config.input.resize in RESIZES, "input.resize",
             f"unknown {config.input.resize!r}; one of {RESIZES}")
    for field in ("jpeg_reencode", "flip"):
        _require(isinstance(config.input[field], bool), f"input.{field}",
                 f"must be True or False, got {config.input[field]!r}")
    _require(isinstance(config.init_from, str), "init_from",
             f"must be a path (a run folder, a checkpoint or a .keras file), got {config.init_from!r}")
    for field in ("init_from_skip", "freeze"):
        value = config[field]
        _require(isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value),
                 field, f"must be a list of layer names (e.g. ['fc8']), got {value!r}")
    for field in ("jit_compile", "fused_lrn"):
        _require(isinstance(config[field], bool), field,
                 f"must be True or False, got {config[field]!r}")
    for field in ("batch_size", "num_epochs", "log_every_steps", "steps_per_loop", "eval.batch_size",
                  "checkpoint.every_steps", "checkpoint.max_to_keep"):
        value = _get(config, field)
        _require(isinstance(value, int) and value > 0, field, f"must be a positive integer, got {value!r}")
    _require(isinstance(config.max_steps, int) and config.max_steps >= 0, "max_steps",
             f"must be 0 (no limit) or a positive integer, got {config.max_steps!r}")
    _require(config.optimizer.learning_rate > 0, "optimizer.learning_rate", "must be positive")
    _require(0 <= config.optimizer.momentum < 1, "optimizer.momentum", "must be in [0, 1)")
    _require(config.optimizer.weight_decay >= 0, "optimizer.weight_decay", "must be >= 0")
    _require(0 < config.schedule.factor < 1, "schedule.factor", "must be in (0, 1)")
    _require(config.schedule.patience >= 1, "schedule.patience", "must be at least 1")
    _require(config.schedule.max_reductions >= 0, "schedule.max_reductions", "must be >= 0")
    epochs = config.schedule.get("epochs", ())
    _require(isinstance(epochs, (tuple, list)) and all(isinstance(e, int) and e >= 1 for e in epochs)
             and list(epochs) == sorted(set(epochs)), "schedule.epochs",
             f"must be increasing epoch numbers >= 1, e.g. (16, 21) or "
             f"--config.schedule.epochs=16,21 (() for the paper's plateau rule), got {epochs!r}")
    _require(config.progress in ("auto", "bar", "lines", "none"), "progress",
             "must be 'auto', 'bar', 'lines' or 'none'")
    profile_window(config.get("profile_steps", ()))
    return config


def profile_window(profile_steps):
    """(first, last) training steps of config.profile_steps, or None for () (no trace).

    (n,) is (n, n); a list (config.json's form) is taken as the tuple.
    """
    steps = tuple(profile_steps) if isinstance(profile_steps, (tuple, list)) else None
    if steps == ():
        return None
    if steps is not None and len(steps) == 1:
        steps = steps * 2
    valid = (steps is not None and len(steps) == 2 and
             all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in steps) and
             steps[0] <= steps[1])
    _require(valid, "profile_steps",
             f"must be the first and last training steps to trace, 1 <= first <= last, e.g. "
             f"(20, 25) or --config.profile_steps=20,25 (() for none), got {profile_steps!r}")
    return steps


def _validate_model(model):
    """config.model: a known builder's name and exactly its arguments, values that can work."""
    name = model.get("name")
    _require(name in model_lib.BUILDERS, "model.name",
             f"unknown network {name!r}; one of {sorted(model_lib.BUILDERS)}")
    expected = {"name", *model_lib.builder_arguments(name)}
    got = set(model.keys())
    _require(got == expected, "model",
             f"keys must be exactly the arguments of model.BUILDERS[{name!r}] and name; unknown "
             f"{sorted(got - expected)}, missing {sorted(expected - got)}")
    # Every builder takes num_classes and image_size (model.py's contract).
    _require(model.num_classes >= 2, "model.num_classes", "must be at least 2")
    _require(model.image_size >= model_lib.MIN_IMAGE_SIZE, "model.image_size",
             f"{model.image_size} is below the minimum {model_lib.MIN_IMAGE_SIZE}")
    if "init" in model:
        _require(model.init in ("paper", "glorot"), "model.init", "must be 'paper' or 'glorot'")
    if "drop_conv" in model:
        _require(model.drop_conv in ("", *model_lib.DROPPABLE_CONVS), "model.drop_conv",
                 f"must be '' (the paper's network) or one of {model_lib.DROPPABLE_CONVS}, "
                 f"got {model.drop_conv!r}")


def _get(config, dotted):
    value = config
    for part in dotted.split("."):
        value = value[part]
    return value
