"""A full disk (ENOSPC, a quota) said in one sentence naming the folder, instead of a traceback.

Used where the programs write much: make_tfrecords' shards, the demo data, checkpoints.
"""
import errno

_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class DiskFull(OSError):
    """A write failed for a full disk; str() is the sentence (sentence()) the programs print."""

    def __init__(self, text):
        super().__init__(errno.ENOSPC, text)

    def __str__(self):
        return self.strerror
_MESSAGES = ("No space left on device", "Disk quota exceeded")


def is_disk_full(error):
    """Whether an OSError or a TensorFlow OpError says the disk (or the quota) is full."""
    if isinstance(error, OSError) and error.errno in _ERRNOS:
        return True
    text = getattr(error, "message", None) or str(error)
    return any(m in text for m in _MESSAGES)


def sentence(folder, what, free):
    """'the disk holding FOLDER is full while WHAT; free FREE there and run the same command again'."""
    return (f"the disk holding {folder} is full (no space left on device) while {what}; free "
            f"{free} there and run the same command again")


def folder_size(path):
    """Bytes of the files under path (0 if it does not exist)."""
    import os
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total
