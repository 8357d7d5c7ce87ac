"""Atomic file writes: a temporary file in the same folder, flushed to disk, renamed into place.

A process killed at any moment leaves the old file or the new one, never half of one,
and a temporary file never has the final name. TensorFlow-free.
"""

import contextlib
import fcntl
import json
import os
import pathlib
import shutil
import tempfile


def write_bytes_atomic(path, data, fsync=True):
    """Writes `data` (bytes or a buffer) to `path` through a temporary file renamed into place.

    `fsync=False` skips flushing the file to disk (a killed process cannot tear it either
    way; only a crash of the machine could): for many small files flushed later at once.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes it private; the final file is not
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path, text):
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path, obj):
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def replace_dir_atomic(fill, final):
    """Makes the folder `final` by calling `fill(tmp)` on a temporary sibling, then renaming it.

    An existing `final` is replaced; a failure leaves it as it was.
    """
    final = pathlib.Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}."))
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        fill(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def fsync_dir(path):
    """Flushes a folder's entries (the names of files renamed into it) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


LOCK_FILE = ".lock"


@contextlib.contextmanager
def exclusive_lock(folder, what, flag):
    """Holds an OS lock on `folder`/.lock for the block: one writer of a folder at a time.

    A second process is refused at once with one line naming the holder's pid; the kernel
    releases the lock when its holder exits, however it dies, so a killed run never leaves
    a stale lock behind. `what` names the work ("training", "prepare") and `flag` the
    option that named the folder, for the message.
    """
    from lm_keras.errors import UserError

    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "?"
            raise UserError(
                f"{flag}={folder} is in use by another {what} (pid {holder}): wait for it to finish, "
                f"stop it, or pass another {flag}"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
