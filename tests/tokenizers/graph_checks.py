"""Checks shared by the in-graph tokenizer tests (char and SentencePiece)."""

import json
import os
import pathlib
import subprocess
import sys

import tensorflow as tf

SAVEDMODEL_CHECK = pathlib.Path(__file__).with_name("savedmodel_check.py")


def tokenize(graph, strings):
    """Python lists of ids from the in-graph tokenize."""
    ids = graph.tokenize(tf.constant(strings, tf.string))
    assert isinstance(ids, tf.RaggedTensor)
    assert ids.dtype == tf.int32
    assert ids.shape.as_list() == [len(strings), None]
    return ids.to_list()


def load_in_fresh_process(strings, export_dirs, tmp_path):
    """What the SavedModels in export_dirs give for `strings`, run by a fresh Python."""
    strings_file = tmp_path / "strings.json"
    strings_file.write_text(json.dumps(strings), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(SAVEDMODEL_CHECK), str(strings_file), *map(str, export_dirs)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""},
        cwd=tmp_path,  # not the repository: lm_keras must not be importable by accident
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])
