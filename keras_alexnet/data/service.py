"""tf.data service: training's decoding and augmentation on other hosts' CPUs.

config.input.data_service names a dispatcher (`grpc://host:port`; empty: the local
pipeline). bin/data_service starts TensorFlow's own servers: one dispatcher
(start_dispatcher), which hands out work, and any number of workers (start_worker),
which run the training input pipeline (input_pipeline.service_records, decode_and_augment,
batch) and send the batches to the trainers. Validation and the final evaluation stay
local: one ordered pass over the validation split, without augmentation, once an epoch.

The processing mode is "distributed_epoch" (ShardingPolicy.DYNAMIC): the dispatcher hands
the training files to the workers one at a time, each worker asking for the next when it
needs one, so a slow or added worker takes less or more, and each file goes to one worker
per epoch. What that means:

- The set: every training example once per epoch (a worker that dies loses what it had
  read: "at most once"). Each worker shuffles and repeats what it reads, so its own epochs
  stay whole; the batches of several workers reach a trainer in the order they are ready,
  so near an epoch's end a trainer may take a batch of the next epoch from a worker that
  finished first (locally, only the epoch's last partial batch spills over).
- Determinism: with one worker the order and augmentation depend only on the seed, as
  locally (but not the same order as the local pipeline's: the files come in sorted order
  every epoch, not reshuffled). With several, which worker reads which file, and so the
  order and each example's seed (its worker's random stream at its position, folded with
  the example's file and record numbers: per example, as locally), depend on timing.
- Resume: as locally, the resumed run starts a new job (job_name: the workdir and the
  step it starts from) whose pipeline is seeded with config.seed + that step; the position
  in the old job is not kept, so the interrupted epoch is not finished example by example.
  The old job's workers stop when the dispatcher drops it (after its job_gc_timeout, the
  runtime's default). A run restarted from the same checkpoint while the dispatcher still
  holds that step's job joins it and continues its stream (tf.data's rule for a job name;
  not tested here).
- Multi-worker training: every trainer builds the same dataset (the whole file list, the
  same seed) and reads from one job (the same name): together the trainers see each
  example once per epoch, but a trainer's share is whatever batches it takes first, not a
  fixed set of files (the local pipeline's: 1/n of the files each, make_dataset's
  input_context). The trainers must name the workdir and the data by the same paths, and
  the data must be readable at config.input.data_dir's path on every service worker.
"""
import errno
import os
import socket

import grpc

SCHEME = "grpc://"
PROCESSING_MODE = "distributed_epoch"  # ShardingPolicy.DYNAMIC
# A client or worker otherwise retries an absent dispatcher for an hour (dispatcher_timeout_ms).
DISPATCHER_TIMEOUT_S = 10.0
_GET_VERSION = "/tensorflow.data.DispatcherService/GetVersion"
_GET_WORKERS = "/tensorflow.data.DispatcherService/GetWorkers"


class DataServiceError(ValueError):
    """A dispatcher address that cannot work: malformed, or nothing answering there."""


def parse_address(address, name):
    """'host:port' of a dispatcher address ('grpc://host:port' or 'host:port'); `name` is the
    config field or flag that gave it, for the error."""
    target = str(address).strip()
    target = target[len(SCHEME):] if target.startswith(SCHEME) else target
    host, _, port = target.rpartition(":")
    if "://" in target or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise DataServiceError(f"{name}={address!r}: not a dispatcher address; give "
                               f"{SCHEME}HOST:PORT, e.g. {SCHEME}localhost:5050")
    return f"{host}:{int(port)}"


def _call(target, method, timeout):
    channel = grpc.insecure_channel(target)
    try:
        # An empty request message serializes to no bytes; the answer is left unparsed.
        return channel.unary_unary(method)(b"", timeout=timeout)
    finally:
        channel.close()


def check_dispatcher(address, name, timeout=DISPATCHER_TIMEOUT_S):
    """Returns 'host:port' if a tf.data dispatcher answers at `address` within `timeout`
    seconds; else DataServiceError, one sentence naming the address (tf.data's own client
    would wait for it an hour)."""
    target = parse_address(address, name)
    try:
        _call(target, _GET_VERSION, timeout)
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.UNIMPLEMENTED:
            raise DataServiceError(f"{name}={address!r}: a server answers at {target} but it is "
                                   "not a tf.data dispatcher") from None
        raise DataServiceError(
            f"{name}={address!r}: no tf.data dispatcher answers at {target} within {timeout:g} s "
            f"({e.code().name.lower()}); start one there with `bin/data_service dispatcher "
            f"--port={target.rpartition(':')[2]}`") from None
    return target


def num_workers(target, timeout=DISPATCHER_TIMEOUT_S):
    """How many workers have registered with the dispatcher at 'host:port' (None: it did not
    answer)."""
    from google.protobuf import empty_pb2, unknown_fields
    try:
        response = empty_pb2.Empty.FromString(_call(target, _GET_WORKERS, timeout))
    except grpc.RpcError:
        return None
    # GetWorkersResponse: `repeated WorkerInfo workers = 1`, read without its proto module.
    return sum(1 for field in unknown_fields.UnknownFieldSet(response) if field.field_number == 1)


def job_name(workdir, step):
    """The job every input pipeline of a run started at `step` shares (module docstring)."""
    return f"keras_alexnet {os.path.abspath(workdir)} from step {int(step)}"


def distribute(dataset, address, job=None):
    """`dataset` run by the service's workers in PROCESSING_MODE, in the job named `job`
    (None: a job of this dataset's own)."""
    import tensorflow as tf  # here: bin/data_service's flag errors come before TensorFlow starts
    return dataset.apply(tf.data.experimental.service.distribute(
        processing_mode=PROCESSING_MODE, service=SCHEME + parse_address(address, "data_service"),
        job_name=job))


def check_port(port, flag="--port"):
    """DataServiceError unless `port` is a free TCP port number of this host (0: any)."""
    if not isinstance(port, int) or not 0 <= port < 65536:
        raise DataServiceError(f"{flag}={port}: not a port number (0-65535)")
    if port == 0:
        return
    # gRPC would share a port in use (SO_REUSEPORT) and say nothing. IPv6's wildcard also
    # covers IPv4 where both are on; IPv4 alone on a host without IPv6.
    for family, wildcard in ((socket.AF_INET6, "::"), (socket.AF_INET, "0.0.0.0")):
        try:
            with socket.socket(family) as probe:
                probe.bind((wildcard, port))
            return
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise DataServiceError(f"{flag}={port}: the port is in use on this host; "
                                       "choose another") from None


def start_dispatcher(port, work_dir=""):
    """TensorFlow's DispatchServer on `port` (0: any), started; with work_dir, the
    dispatcher keeps its state there and a restarted one (same port and folder) carries on
    its jobs (fault_tolerant_mode; not tested here)."""
    check_port(port)
    import tensorflow as tf
    config = tf.data.experimental.service.DispatcherConfig(
        port=port, work_dir=work_dir or None, fault_tolerant_mode=bool(work_dir))
    return tf.data.experimental.service.DispatchServer(config)


def start_worker(dispatcher, port=0, host=None):
    """TensorFlow's WorkerServer on `port` (0: any), registered with the dispatcher at
    `dispatcher` (checked first) under the name trainers reach it by: `host`, this
    machine's host name by default (tf.data's own default, localhost, serves only trainers
    on this machine)."""
    target = check_dispatcher(dispatcher, "--dispatcher")
    check_port(port)
    import tensorflow as tf
    config = tf.data.experimental.service.WorkerConfig(
        dispatcher_address=target, port=port,
        worker_address=f"{host or socket.gethostname()}:%port%")
    return tf.data.experimental.service.WorkerServer(config)


def bound_port(server):
    """The port a DispatchServer or WorkerServer started on (its `_address`: 'localhost:PORT';
    neither server has a public accessor for a worker's)."""
    return int(server._address.rpartition(":")[2])
