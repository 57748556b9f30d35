"""tf.data service (data/service.py): training's examples through a dispatcher and workers on
localhost are the local pipeline's, each with a seed of its own; a missing dispatcher is one
sentence within a bounded time; bin/data_service starts TensorFlow's servers."""
import collections
import math
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

import fixtures as fx
from keras_alexnet.config import ConfigError
from keras_alexnet.data import input_pipeline, layout, service, shard_writer
from keras_alexnet.training import train

NUM_FILES = 40  # more than a worker's interleave takes at once: every worker gets files
PER_FILE = 2
NUM_RECORDS = NUM_FILES * PER_FILE


WORKERS = {}  # a fixture's address -> its WorkerServers


def _servers(num_workers):
    dispatcher = service.start_dispatcher(0)
    target = f"localhost:{service.bound_port(dispatcher)}"
    workers = [service.start_worker(target, host="localhost") for _ in range(num_workers)]
    WORKERS[service.SCHEME + target] = workers
    return dispatcher, workers, service.SCHEME + target


@pytest.fixture(scope="module")
def one_worker():
    dispatcher, workers, address = _servers(1)
    yield address
    for server in workers + [dispatcher]:
        server.stop()


@pytest.fixture(scope="module")
def two_workers():
    dispatcher, workers, address = _servers(2)
    assert service.num_workers(address[len(service.SCHEME):]) == 2
    yield address
    for server in workers + [dispatcher]:
        server.stop()


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """NUM_FILES shards of PER_FILE records; record i has label i and filename 'r{i}'."""
    root = tmp_path_factory.mktemp("service-data")
    jpeg = fx.encode(fx.picture(40, 40))
    for f in range(NUM_FILES):
        with tf.io.TFRecordWriter(str(root / f"train-{f:05d}-of-{NUM_FILES:05d}")) as writer:
            for r in range(f * PER_FILE, (f + 1) * PER_FILE):
                writer.write(shard_writer.make_example(
                    {key: spec.default_value if spec.default_value is not None else 0
                     for key, spec in layout.FEATURE_SPEC.items()}
                    | {"image/encoded": jpeg, "image/class/label": r, "image/filename": f"r{r}"}))
    return input_pipeline.list_shards(str(root / "train-*"))


def _names_and_seeds(records, address, job=None):
    """(filename, seed pair) of every record a service_records dataset yields via the service."""
    parse = lambda s, seed: (tf.io.parse_single_example(  # noqa: E731
        s, {"image/filename": layout.FEATURE_SPEC["image/filename"]})["image/filename"], seed)
    out = service.distribute(records.map(parse), address, job)
    return [(name.decode(), tuple(seed)) for name, seed in out.as_numpy_iterator()]


def test_make_example_keys_are_the_ones_the_shards_fixture_writes(shards):
    record = next(iter(tf.data.TFRecordDataset(shards[3])))
    name = tf.io.parse_single_example(record, {"image/filename": layout.FEATURE_SPEC["image/filename"]})
    assert name["image/filename"].numpy() == b"r6"


def test_an_epoch_through_two_workers_is_the_local_epochs_set_each_with_its_own_seed(
        shards, two_workers):
    local = [name for name, _ in _names_and_seeds_local(shards)]
    assert collections.Counter(local) == collections.Counter(f"r{i}" for i in range(NUM_RECORDS))
    got = _names_and_seeds(input_pipeline.service_records(shards, seed=7, repeat=False),
                           two_workers)
    assert collections.Counter(name for name, _ in got) == collections.Counter(local)
    # Both workers draw the same Dataset.random stream: without the fold the examples at
    # one position on the two workers would share a seed.
    assert len({seed for _, seed in got}) == NUM_RECORDS


def _names_and_seeds_local(shards):
    records = input_pipeline.read_records(shards, True, seed=7, repeat=False)
    return [(tf.io.parse_single_example(r, {"image/filename": layout.FEATURE_SPEC["image/filename"]})
             ["image/filename"].numpy().decode(), None) for r in records]


def test_one_workers_epochs_stay_whole_and_each_example_is_reseeded_every_epoch(shards, one_worker):
    repeated = input_pipeline.service_records(shards, seed=3, shuffle_buffer=16).take(2 * NUM_RECORDS)
    got = _names_and_seeds(repeated, one_worker)
    every = collections.Counter(f"r{i}" for i in range(NUM_RECORDS))
    assert collections.Counter(name for name, _ in got[:NUM_RECORDS]) == every
    assert collections.Counter(name for name, _ in got[NUM_RECORDS:]) == every
    assert len({seed for _, seed in got}) == 2 * NUM_RECORDS
    # A seeded stream from one worker is reproducible: the same seed, the same epoch.
    again = _names_and_seeds(input_pipeline.service_records(shards, seed=3, shuffle_buffer=16)
                             .take(NUM_RECORDS), one_worker)
    assert again == got[:NUM_RECORDS]


def test_make_dataset_through_the_service_yields_the_local_examples(shards, two_workers):
    kwargs = dict(stats=None, image_size=32, stored_size=40, seed=1, repeat=False,
                  drop_remainder=False, normalization="channel")
    pattern = os.path.join(os.path.dirname(shards[0]), "train-*")
    local = input_pipeline.make_dataset(pattern, 4, True, **kwargs)
    served = input_pipeline.make_dataset(pattern, 4, True, data_service=two_workers, **kwargs)
    labels = {name: sorted(np.concatenate([y.numpy() for _, y in ds]).tolist())
              for name, ds in (("local", local), ("served", served))}
    assert labels["served"] == labels["local"] == list(range(NUM_RECORDS))
    images, _ = next(iter(served))
    assert images.shape[1:] == (32, 32, 3) and np.isfinite(images.numpy()).all()


def test_two_trainers_of_one_job_see_each_example_once_between_them(shards, two_workers):
    """The input pipelines of a multi-worker run: the same dataset and job name, read apart."""
    pattern = os.path.join(os.path.dirname(shards[0]), "train-*")
    trainers = [iter(input_pipeline.make_dataset(
        pattern, 4, True, stats=None, image_size=32, stored_size=40, seed=5, repeat=False,
        drop_remainder=False, normalization="channel", data_service=two_workers,
        service_job=service.job_name("/runs/shared", 0))) for _ in range(2)]
    seen = [[], []]
    while trainers[0] or trainers[1]:  # in turns, as trainers in step would
        for i, it in enumerate(trainers):
            try:
                seen[i] += next(it)[1].numpy().tolist() if it else []
            except StopIteration:
                trainers[i] = None
    assert sorted(seen[0] + seen[1]) == list(range(NUM_RECORDS))
    assert seen[0] and seen[1]


def test_the_evaluation_pipeline_stays_local(shards):
    """An address nothing answers at: evaluation never contacts it."""
    config = {"input": {"data_dir": os.path.dirname(shards[0]), "label_offset": 0,
                        "normalization": "channel", "data_service": "grpc://localhost:1"},
              "model": {"image_size": 32}}
    ds = input_pipeline.from_input_config(config, "train", 16, False, stats=None, stored_size=40)
    assert sum(int(tf.size(y)) for _, y in ds) == NUM_RECORDS


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory):
    return fx.demo_data_dir(str(tmp_path_factory.mktemp("demo")))


@pytest.mark.slow
def test_a_tiny_training_through_the_service_trains_and_resumes_locally(demo_data, tmp_path):
    dispatcher, [worker], one_worker = _servers(1)  # its own: the worker's tasks are the run's
    try:
        _train_through(demo_data, one_worker, worker, str(tmp_path / "run"))
    finally:
        worker.stop()
        dispatcher.stop()


def _train_through(demo_data, one_worker, worker, workdir):
    config = fx.tiny_config(demo_data, {"num_epochs": 1, "input.data_service": one_worker})
    result = train.train_and_evaluate(config, workdir)
    assert worker._num_tasks() == 1  # the run's job ran on the service's worker
    assert result["status"] == "done" and result["step"] == 6  # 48 images, batches of 8
    losses = [e["loss"] for e in fx.read_events(workdir, "train")]
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses)
    # The epoch's labels as the trainer's dataset yields them: the local epoch's classes.
    seen = {}
    for name, address in (("local", ""), ("served", one_worker)):
        c = fx.tiny_config(demo_data, {"input.data_service": address})
        train_ds, _ = train._make_datasets(c, tf.distribute.get_strategy(), None, train_seed=0,
                                           service_job=service.job_name(workdir, 100))
        batches = list(train_ds.take(6))
        seen[name] = collections.Counter(np.concatenate([y.numpy() for _, y in batches]).tolist())
    assert seen["served"] == seen["local"] == {c: fx.TRAIN_PER_CLASS for c in range(fx.NUM_CLASSES)}
    # Where the images are decoded is no part of the run: it resumes without the service.
    more = fx.tiny_config(demo_data, {"num_epochs": 2})
    assert train.train_and_evaluate(more, workdir)["step"] == 12


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_a_missing_dispatcher_is_one_sentence_naming_it_within_the_timeout():
    address = f"grpc://localhost:{_free_port()}"  # nothing listens there
    start = time.monotonic()
    with pytest.raises(service.DataServiceError) as e:
        service.check_dispatcher(address, "config.input.data_service")
    assert time.monotonic() - start < service.DISPATCHER_TIMEOUT_S + 30
    message = str(e.value)
    assert f"config.input.data_service={address!r}" in message and "\n" not in message
    assert "no tf.data dispatcher answers" in message


def test_a_silent_server_is_given_up_on_after_the_timeout():
    """A port that accepts connections and never answers (a hung host): the deadline ends it."""
    with socket.socket() as silent:
        silent.bind(("localhost", 0))
        silent.listen(8)
        address = f"localhost:{silent.getsockname()[1]}"
        start = time.monotonic()
        with pytest.raises(service.DataServiceError, match="within 2 s"):
            service.check_dispatcher(address, "--dispatcher", timeout=2.0)
        assert time.monotonic() - start < 2.0 + 30


def test_training_refuses_a_missing_dispatcher_before_building_anything(demo_data):
    address = f"grpc://localhost:{_free_port()}"
    config = fx.tiny_config(demo_data, {"input.data_service": address})
    with pytest.raises(ConfigError, match="config.input.data_service"):
        train.check_data(config)


def test_training_warns_of_a_dispatcher_without_workers(demo_data, capsys):
    dispatcher = service.start_dispatcher(0)
    try:
        target = f"localhost:{service.bound_port(dispatcher)}"
        train.check_data(fx.tiny_config(demo_data, {"input.data_service": "grpc://" + target}))
        assert f"no tf.data worker has registered with the dispatcher at {target}" \
            in capsys.readouterr().err
    finally:
        dispatcher.stop()


@pytest.mark.parametrize("address", ["localhost", "http://localhost:5050", "grpc://:5050",
                                     "grpc://localhost:99999", "grpc://localhost:port"])
def test_a_malformed_address_names_the_field(address):
    with pytest.raises(service.DataServiceError, match="not a dispatcher address"):
        service.parse_address(address, "config.input.data_service")


def test_addresses_with_and_without_the_scheme():
    assert service.parse_address("grpc://host-1:5050", "x") == "host-1:5050"
    assert service.parse_address(" host-1:5050 ", "x") == "host-1:5050"


# -- bin/data_service ---------------------------------------------------------------------------

BIN = os.path.join(fx.REPO, "bin", "data_service")
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")


def _run(*args):
    return subprocess.run([sys.executable, BIN, *args], capture_output=True, text=True,
                          timeout=120, env=ENV)


def _sentence(result):
    lines = [line for line in result.stderr.splitlines() if line.startswith("bin/data_service")]
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.slow
def test_bad_flags_are_one_sentence_each(tmp_path):
    port = _free_port()
    cases = [
        (["worker"], "worker needs --dispatcher=HOST:PORT"),
        (["worker", f"--dispatcher=localhost:{port}"], f"localhost:{port}"),
        (["worker", "--dispatcher=localhost"], "not a dispatcher address"),
        (["dispatcher", "--port=70000"], "--port=70000: not a port number"),
        (["dispatcher", f"--work_dir={tmp_path / 'absent'}"], "no such folder"),
        (["dispatcher", "--dispatcher=localhost:1"], "a worker's flags"),
    ]
    for args, expected in cases:
        assert expected in _sentence(_run(*args)), args
    with socket.socket() as taken:
        taken.bind(("", 0))
        taken.listen(1)
        assert "in use" in _sentence(_run("dispatcher", f"--port={taken.getsockname()[1]}"))
    usage = _run("server")
    assert usage.returncode != 0 and "dispatcher or worker" in usage.stderr


@pytest.mark.slow
def test_the_program_starts_a_dispatcher_and_a_worker_and_stops_on_sigterm(tmp_path):
    started = []
    try:
        dispatcher = subprocess.Popen([sys.executable, BIN, "dispatcher", "--port=0",
                                       f"--work_dir={tmp_path}"], stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, text=True, env=ENV)
        started.append(dispatcher)
        line = dispatcher.stdout.readline()
        assert line.startswith("tf.data dispatcher at grpc://"), line
        port = int(line.split("grpc://")[1].split(":")[1])
        worker = subprocess.Popen([sys.executable, BIN, "worker", f"--dispatcher=localhost:{port}",
                                   "--host=localhost"], stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True, env=ENV)
        started.append(worker)
        assert worker.stdout.readline().startswith("tf.data worker on port")
        fx.wait_for(lambda: service.num_workers(f"localhost:{port}") == 1, 60, what="registration")
        out = service.distribute(tf.data.Dataset.range(10), f"localhost:{port}")
        assert sorted(out.as_numpy_iterator()) == list(range(10))
        for proc in reversed(started):
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.kill()
