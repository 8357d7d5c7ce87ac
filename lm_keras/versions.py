"""The versions of the libraries a dataset or a run was made with, for its manifest or config.

Read from the installed packages' metadata, so nothing is imported: TensorFlow-free.
"""

import importlib.metadata
import platform

# What config.json records: everything a run's numbers depend on.
RUN_PACKAGES = ("lm_keras", "tensorflow", "keras", "tensorflow-text", "sentencepiece", "numpy")


def library_versions(packages=RUN_PACKAGES):
    """{package: version} of the installed `packages` (None where one is not installed), and Python's."""
    versions = {}
    for name in packages:
        try:
            versions[name.replace("-", "_")] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name.replace("-", "_")] = None
    versions["python"] = platform.python_version()
    return versions
