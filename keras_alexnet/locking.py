"""Exclusive locks: one bin/train per workdir, one make_tfrecords per output folder, and folders
that tell whether the process writing them is still alive.

`fcntl.flock` on an open file: the kernel releases the lock when the process ends, however it
ends (kill -9, the out-of-memory killer, a crash, a power cut), so a crashed run never leaves a
folder locked and no stale-lock cleanup is needed. A lock file is never removed: removing it
would let a third process lock a new file while the second still holds the old one. It holds
the holder's pid, host and start time, for the error message of whoever finds it locked.

Only local (and NFS) paths can be locked: a path such as gs://bucket/run is not locked.
"""
import fcntl
import os
import socket
import time


class Locked(Exception):
    """Another process holds the lock; `holder` is what it wrote in the lock file."""

    def __init__(self, path, holder):
        super().__init__(f"{path} is locked by {holder or 'another process'}")
        self.path = path
        self.holder = holder or "another process"


def is_local(path):
    return "://" not in str(path)


class FileLock:
    """An exclusive, non-blocking flock on `path` (created if needed); a context manager.

    Raises Locked if another process holds it. Re-entering in the same process is not
    supported: flock locks belong to open files, so a second FileLock on the same path
    in one process is refused like any other process.
    """

    def __init__(self, path):
        self.path = str(path)
        self._fd = None

    def acquire(self):
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 1024, 0).decode(errors="replace").strip()
            os.close(fd)
            raise Locked(self.path, holder) from None
        except BaseException:
            os.close(fd)
            raise
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {started}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self):
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)  # no holder any more (a folder's fd cannot be truncated)
            except OSError:
                pass
            os.close(self._fd)  # closing the file releases the lock
            self._fd = None

    def __enter__(self):
        return self if self._fd is not None else self.acquire()

    def __exit__(self, *exc):
        self.release()


def os_reason(error):
    """An OSError as a reason; says which part of the path is a file where a folder should be."""
    if isinstance(error, (NotADirectoryError, FileExistsError)) and error.filename:
        parent = str(error.filename)
        while parent and not os.path.exists(parent):
            parent = os.path.dirname(parent)
        if parent and not os.path.isdir(parent):
            return f"{parent} is a file, not a folder"
    reason = error.strerror or str(error)
    return f"{reason}: {error.filename}" if error.filename else reason


def lock_folder(folder, filename, error, *, flag, holder, advice, makedirs=None):
    """Creates `folder` (or `makedirs`, inside it) and takes its lock file; a FileLock.

    Either failure becomes error(sentence) naming the flag: another `holder` has the lock
    (with `advice`), or the folder cannot be created (which part of the path is a file).
    """
    try:
        os.makedirs(makedirs or folder, exist_ok=True)
        return FileLock(os.path.join(folder, filename)).acquire()
    except Locked as e:
        raise error(f"{flag} {folder} is in use by another {holder} ({e.holder}); {advice}") from None
    except OSError as e:
        raise error(f"{flag} {folder}: cannot write there ({os_reason(e)})") from None


def hold_folder(path):
    """Locks folder `path` itself (an open directory can be flocked); returns the FileLock-like holder.

    Used for temporary folders: `in_use(path)` tells another process whether the writer
    of such a folder is still alive.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BaseException:
        os.close(fd)
        raise
    holder = FileLock(path)
    holder._fd = fd
    return holder


def in_use(folder):
    """Whether a live process holds `folder` (hold_folder); False for an abandoned one."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
