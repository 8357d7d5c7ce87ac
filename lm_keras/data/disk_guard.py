"""disk_guard: a full disk met while writing becomes one line for the user, not a traceback."""

import contextlib
import errno
import os

from lm_keras.errors import UserError
from lm_keras.files import write_bytes_atomic

# ENOSPC: no space left; EFBIG: a file-size limit (ulimit -f); EDQUOT: a quota.
DISK_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


@contextlib.contextmanager
def disk_guard(path):
    """Turns a full disk (or a file-size limit, or a quota) in the block into a `UserError` naming `path`.

    Its line tells the user to free space and rerun: what prepare writes resumes where it stopped.
    Any other `OSError` passes through.
    """
    try:
        yield
    except OSError as e:
        if e.errno in DISK_FULL:
            raise UserError(
                f"cannot write {path}: {os.strerror(e.errno)} (the disk is full or a file-size limit "
                "was hit): free some space and rerun the same command; it resumes where it stopped"
            ) from None
        raise


def write_file(path, data):
    """Writes `data` to `path` atomically under `disk_guard`, without waiting for the disk.

    For prepare's many shards and saves: a kill cannot tear them either way, and the shards
    are flushed together before the manifest (only a crash of the machine could lose them).
    """
    with disk_guard(path):
        write_bytes_atomic(path, data, fsync=False)
