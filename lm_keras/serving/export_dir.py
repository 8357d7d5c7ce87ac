"""An export directory in TF Serving's layout, `EXPORT_DIR/<version>/saved_model.pb`. TensorFlow-free.

The export command, `export_saved_model` and the server read versions here, so that
they agree on which folders are versions, and the commands check their paths
before TensorFlow loads.
"""

import pathlib

from lm_keras.errors import UserError


def existing_versions(export_dir):
    """The numeric version folders of `export_dir`, ascending (what TF Serving would serve)."""
    path = pathlib.Path(export_dir)
    if not path.is_dir():
        return []
    return sorted(int(p.name) for p in path.iterdir() if p.is_dir() and p.name.isdigit())


def resolve_version(export_dir, version=None):
    """The version to write: `version`, checked to be free, or one more than the highest.

    Raises:
        UserError: `export_dir` is a file, `version` is not a positive int, or it exists.
    """
    export_dir = pathlib.Path(export_dir)
    if export_dir.exists() and not export_dir.is_dir():
        raise UserError(f"--export_dir={export_dir} is a file; pass a folder (TF Serving's model base path)")
    versions = existing_versions(export_dir)
    next_free = (versions[-1] + 1) if versions else 1
    if version is None:
        return next_free
    if not isinstance(version, int) or isinstance(version, bool) or version <= 0:
        raise UserError(f"--version must be a positive integer; received version={version!r}")
    if (export_dir / str(version)).exists():
        raise UserError(
            f"{export_dir / str(version)} already exists: versions are never overwritten; pass "
            f"another --version (the next free one is {next_free})"
        )
    return version


def latest_servable(export_dir):
    """(version, path) of the highest version of `export_dir` that holds a saved_model.pb.

    Raises:
        UserError: no such version (a missing or empty folder, or a file).
    """
    path = pathlib.Path(export_dir)
    versions = [v for v in existing_versions(path) if (path / str(v) / "saved_model.pb").is_file()]
    if not versions:
        raise UserError(
            f"--export_dir={export_dir} holds no version folder with a saved_model.pb; "
            "export one first (python -m lm_keras.export --model_dir=... --export_dir=...)"
        )
    return versions[-1], path / str(versions[-1])
