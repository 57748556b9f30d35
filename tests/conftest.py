"""Shared test set-up: quiet TensorFlow, and every test starts in float32."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The tree under test, not whichever checkout the virtual environment installed: first on
# this process's path (pytest.ini's pythonpath) and on every subprocess's.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (_ROOT, os.environ.get("PYTHONPATH")) if p)

import keras_alexnet  # noqa: E402,F401  (first: its TensorFlow settings, as in bin/)
import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _float32_policy():
    """A test that sets a mixed-precision policy must not leak it into the next."""
    keras.mixed_precision.set_global_policy("float32")
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    """fixtures.export_tiny_run: the tiny model, its workdir and data, exported (once a module)."""
    import fixtures
    return fixtures.export_tiny_run(tmp_path_factory.mktemp("export"))


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """fixtures.demo_data_dir: the tiny demo data folder, drawn once for the whole session.

    Read only: a test that changes its data copies it first (shutil.copytree).
    """
    import fixtures
    return fixtures.demo_data_dir(str(tmp_path_factory.mktemp("demo_data")))
