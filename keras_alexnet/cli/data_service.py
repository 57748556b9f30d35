"""bin/data_service: TensorFlow's tf.data service servers, for config.input.data_service.

    bin/data_service dispatcher --port=5050 [--work_dir=DIR]
    bin/data_service worker --dispatcher=HOST:5050 [--port=5051] [--host=NAME]

One dispatcher per cluster; one worker on each host whose CPUs decode for the trainers,
which train with --config.input.data_service=grpc://HOST:5050. Each runs until stopped
(Ctrl-C or SIGTERM). Workers need the training data at config.input.data_dir's path.
data/service.py says what the service changes in training (BUILD.md: when to use it).
"""
import os
import signal
import socket
import sys
import threading

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from keras_alexnet.cli import run_app  # noqa: E402

_PORT = flags.DEFINE_integer("port", 0, "The port to serve on (0: any free one, printed).")
_WORK_DIR = flags.DEFINE_string(
    "work_dir", "", "dispatcher: a folder for its state, so that a dispatcher restarted with the "
    "same --port and --work_dir carries on its jobs (tf.data's fault-tolerant mode; not tested here).")
_DISPATCHER = flags.DEFINE_string("dispatcher", "", "worker: the dispatcher's HOST:PORT.")
_HOST = flags.DEFINE_string("host", "", "worker: the name the trainers reach this host by "
                            "(default: its host name).")
ROLES = ("dispatcher", "worker")


def _fail(message):
    sys.stderr.write(f"bin/data_service: error: {message}\n")
    sys.exit(1)


def _start(role):
    from keras_alexnet.data import service
    if role == "dispatcher":
        if _DISPATCHER.value or _HOST.value:
            _fail("--dispatcher and --host are a worker's flags")
        if _WORK_DIR.value and not os.path.isdir(_WORK_DIR.value):
            _fail(f"--work_dir={_WORK_DIR.value}: no such folder")
        if _WORK_DIR.value and not os.access(_WORK_DIR.value, os.W_OK | os.X_OK):
            _fail(f"--work_dir={_WORK_DIR.value}: cannot write there")
        server = service.start_dispatcher(_PORT.value, _WORK_DIR.value)
        address = f"{service.SCHEME}{socket.gethostname()}:{service.bound_port(server)}"
        print(f"tf.data dispatcher at {address}: train with --config.input.data_service set to it",
              flush=True)
        return server
    if _WORK_DIR.value:
        _fail("--work_dir is the dispatcher's flag")
    if not _DISPATCHER.value:
        _fail("worker needs --dispatcher=HOST:PORT (where bin/data_service dispatcher runs)")
    server = service.start_worker(_DISPATCHER.value, _PORT.value, _HOST.value or None)
    print(f"tf.data worker on port {service.bound_port(server)}, serving the dispatcher at "
          f"{_DISPATCHER.value}", flush=True)
    return server


def main(argv):
    from keras_alexnet.data import service
    if len(argv) != 2 or argv[1] not in ROLES:
        raise app.UsageError(f"give one role, {' or '.join(ROLES)}; got {argv[1:]}")
    try:
        server = _start(argv[1])
    except service.DataServiceError as e:
        _fail(e)
    # Until SIGTERM or Ctrl-C: the server's own join() would not return to Python for them.
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass
    server.stop()


def run():
    run_app(main, __name__, __doc__)


if __name__ == "__main__":
    run()
