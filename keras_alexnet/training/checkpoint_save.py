"""Saving a checkpoint without leaving debris: a full disk is a sentence, a killed save is cleaned.

TensorFlow writes a checkpoint's shards into PREFIX_temp/ and then merges them into
PREFIX.index and PREFIX.data-*: a `kill -9` in between left an empty ckpt-N_temp/
forever, and a full disk a traceback and the same folder.
"""
import glob
import os
import shutil

from keras_alexnet import disk_full
from keras_alexnet.training import workdir as workdir_lib


def save_checkpoint(manager, step):
    """manager.save(checkpoint_number=step), replacing a save at the same step; returns its path.

    A second save at one step (the epoch's end after a periodic save) replaces the first:
    its files go first, so a kill during the save leaves a missing latest checkpoint,
    which a resumed run skips, never one file of each save (a checksum error).
    """
    prefix = os.path.join(manager.directory, f"ckpt-{step}")
    workdir_lib.remove_checkpoint(prefix)
    try:
        return manager.save(checkpoint_number=step)
    except Exception as e:  # noqa: BLE001  TensorFlow's OpError or an OSError
        if not disk_full.is_disk_full(e):
            raise
        workdir_lib.remove_checkpoint(prefix)
        _remove_temporaries(prefix)
        latest = manager.latest_checkpoint
        size = sum(os.path.getsize(p) for p in glob.glob(f"{latest}.*")) if latest else 0
        need = f"about {size / 1e6:,.0f} MB" if size else "room for one checkpoint"
        raise disk_full.DiskFull(disk_full.sentence(
            manager.directory, f"saving the checkpoint of step {step} (not saved; "
            f"{latest or 'no checkpoint'} is the newest)", need)) from None


def _remove_temporaries(prefix):
    for path in glob.glob(f"{glob.escape(prefix)}_temp*"):
        shutil.rmtree(path, ignore_errors=True)


def remove_abandoned_temporaries(folder):
    """The ckpt-N_temp* folders of saves that were killed; call holding the workdir's lock."""
    removed = sorted(glob.glob(os.path.join(glob.escape(folder), "ckpt-*_temp*")))
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed
