"""disk_guard: a full disk becomes one line naming the file; other errors pass through."""

import errno
import os

import pytest

from lm_keras.data.disk_guard import disk_guard
from lm_keras.errors import UserError


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EFBIG, errno.EDQUOT])
def test_a_full_disk_is_one_line_naming_the_file(tmp_path, code):
    with pytest.raises(UserError) as raised, disk_guard(tmp_path / "shard.bin"):
        raise OSError(code, os.strerror(code))
    assert str(raised.value) == (
        f"cannot write {tmp_path / 'shard.bin'}: {os.strerror(code)} (the disk is full or a file-size "
        "limit was hit): free some space and rerun the same command; it resumes where it stopped"
    )


def test_other_errors_pass_through(tmp_path):
    with pytest.raises(PermissionError), disk_guard(tmp_path):
        raise PermissionError(errno.EACCES, "denied")
