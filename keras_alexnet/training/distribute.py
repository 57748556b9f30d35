"""Strategy and precision setup for training: one place that reads config.distribution/precision.

Multi-worker clusters come from TF_CONFIG or from SLURM's environment. Only the
chief writes to the workdir; the other workers write to a temporary folder
(`worker_scratch`, removed when the run ends), as TensorFlow's multi-worker guide
prescribes (every worker must take part in a save, because saving reads
distributed variables collectively).
"""
import contextlib
import glob
import os
import shutil
import tempfile

import keras
import tensorflow as tf

from keras_alexnet import locking
from keras_alexnet.config import ConfigError


def setup_devices(config):
    """Splits the CPU into logical devices if asked; must run before TensorFlow starts."""
    n = config.distribution.cpu_devices
    if n and n > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        current = tf.config.get_logical_device_configuration(cpu)
        if current is not None and len(current) == n:
            return  # already split (e.g. a second run in the same process)
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)])
        except RuntimeError as e:
            raise ConfigError(f"config.distribution.cpu_devices={n}: TensorFlow is already "
                              f"initialized in this process ({e})") from e


def cluster_resolver(kind):
    """The multi-worker cluster: from TF_CONFIG, from SLURM, or ('auto') whichever is set."""
    if kind == "auto":
        if os.environ.get("TF_CONFIG"):
            kind = "tf_config"
        elif os.environ.get("SLURM_JOB_ID"):
            kind = "slurm"
        else:
            raise ConfigError("config.distribution.strategy='multi_worker' needs a cluster: set "
                             "TF_CONFIG or run under SLURM (config.distribution.cluster_resolver)")
    if kind == "tf_config":
        return tf.distribute.cluster_resolver.TFConfigClusterResolver()
    if kind == "slurm":
        # One task per host using all its GPUs (every host like this one). Given
        # gpus_per_node, the resolver does not run nvidia-smi (absent on CPU
        # hosts); it lists no task for 0 GPUs, so CPU hosts count one slot.
        # auto_set_gpu=False: the task keeps all its host's GPUs.
        gpus = len(tf.config.list_physical_devices("GPU"))
        return tf.distribute.cluster_resolver.SlurmClusterResolver(
            gpus_per_node=max(gpus, 1), auto_set_gpu=False)
    raise ConfigError(f"config.distribution.cluster_resolver: unknown {kind!r}")


def make_strategy(config):
    """The tf.distribute strategy named by config.distribution.strategy."""
    dist = config.distribution
    if dist.strategy == "multi_worker":
        # First: collectives must be configured before anything starts TensorFlow's
        # runtime (listing logical devices does).
        return tf.distribute.MultiWorkerMirroredStrategy(
            cluster_resolver=cluster_resolver(dist.cluster_resolver))
    gpus = tf.config.list_physical_devices("GPU")
    devices = list(dist.devices) or None
    if dist.strategy == "auto":
        if len(gpus) > 1:
            return tf.distribute.MirroredStrategy()
        return tf.distribute.get_strategy()
    if dist.strategy == "mirrored":
        if devices is None and not gpus and dist.cpu_devices > 1:
            devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    if dist.strategy == "one_device":
        device = devices[0] if devices else ("/gpu:0" if gpus else "/cpu:0")
        return tf.distribute.OneDeviceStrategy(device)
    raise ConfigError(f"config.distribution.strategy: unknown strategy {dist.strategy!r}")


def resolve_precision(precision):
    """The Keras policy for a config.precision; 'auto' picks by the hardware:

    - GPUs of compute capability >= 8.0 (Ampere and newer): mixed_bfloat16 (bfloat16 tensor
      cores, float32's range: no loss scaling);
    - older GPUs: mixed_float16 (float16 tensor cores, with loss scaling);
    - CPUs with native bfloat16 (AVX512-BF16 or AMX-BF16 in /proc/cpuinfo): mixed_bfloat16,
      ~1.5x float32 there;
    - other CPUs: float32 (bfloat16 and float16 are emulated, slower than float32).
    """
    if precision != "auto":
        return precision
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        capabilities = [tf.config.experimental.get_device_details(gpu).get("compute_capability")
                        for gpu in gpus]
        if all(c is not None and tuple(c) >= (8, 0) for c in capabilities):
            return "mixed_bfloat16"
        return "mixed_float16"
    from keras_alexnet import bfloat16_conv
    return "mixed_bfloat16" if bfloat16_conv.cpu_has_native_bfloat16() else "float32"


def set_precision(precision):
    """Sets the Keras global dtype policy; returns the policy name actually used."""
    precision = resolve_precision(precision)
    if precision not in ("float32", "mixed_float16", "mixed_bfloat16"):
        raise ConfigError(f"config.precision: unknown precision {precision!r}")
    keras.mixed_precision.set_global_policy(precision)
    return precision


def is_chief(strategy):
    """True on the worker that writes: the chief, or worker 0 when the cluster has no chief."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type is None:
        return True
    return task_type == "chief" or (task_type == "worker" and task_id == 0
                                    and "chief" not in resolver.cluster_spec().as_dict())


def is_multi_worker(strategy):
    """Whether other processes train with this one (a MultiWorkerMirroredStrategy of 2+ workers)."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    resolver = getattr(strategy, "cluster_resolver", None)
    spec = resolver.cluster_spec().as_dict() if resolver is not None else {}
    return sum(len(tasks) for kind, tasks in spec.items() if kind in ("chief", "worker")) > 1


def any_worker(strategy, flag):
    """True if `flag` is set on any worker: a collective every worker must call at the same point.

    Lets all workers take one decision (stop on a signal, give up when the chief cannot use
    the workdir) so none is left waiting in a collective for a worker that has gone.
    """
    if not is_multi_worker(strategy):
        return bool(flag)
    value = tf.constant(1.0 if flag else 0.0)
    total = strategy.reduce("sum", strategy.run(lambda: tf.identity(value)), axis=None)
    return float(total) > 0


WORKER_SCRATCH_PREFIX = "alexnet-worker-"


@contextlib.contextmanager
def worker_scratch(chief):
    """None on the chief; on the other workers, a temporary folder removed when the run ends.

    The other workers write their (discarded) checkpoints and summaries there. A worker
    killed before removing its folder leaves it behind; the next run on that host removes
    such folders, telling them from live ones by their lock (locking.hold_folder).
    """
    if chief:
        yield None
        return
    for stale in glob.glob(os.path.join(tempfile.gettempdir(), WORKER_SCRATCH_PREFIX + "*")):
        if os.path.isdir(stale) and not locking.in_use(stale):
            shutil.rmtree(stale, ignore_errors=True)
    folder = tempfile.mkdtemp(prefix=WORKER_SCRATCH_PREFIX)
    held = locking.hold_folder(folder)
    try:
        yield folder
    finally:
        held.release()
        shutil.rmtree(folder, ignore_errors=True)


def write_dir(path, chief, scratch=None):
    """`path` on the chief; on the other workers, a folder of the same name in `scratch`."""
    if chief:
        return path
    if scratch is None:
        return tempfile.mkdtemp(prefix=WORKER_SCRATCH_PREFIX)
    folder = os.path.join(scratch, os.path.basename(os.path.normpath(path)))
    os.makedirs(folder, exist_ok=True)
    return folder
