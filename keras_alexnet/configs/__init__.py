"""One config file per experiment, each a `get_config()` starting from keras_alexnet/config.py.

Inside the package so that an installed keras_alexnet has them (bin/study's default
baseline is imagenette.py); a checkout's `configs/` is a link to this folder, so
`--config=configs/demo.py` works from the repository's root.
"""
import os

FOLDER = os.path.dirname(os.path.abspath(__file__))


def path(name):
    """The installed config file `name` (e.g. "imagenette.py")."""
    return os.path.join(FOLDER, name)
