"""Run in a fresh process: loads SavedModels with only tensorflow and tensorflow_text.

Usage: python savedmodel_check.py STRINGS_JSON EXPORT_DIR...
Prints one JSON line: {export_dir: {"ids": [[...]], "text": [...], "dense_text": [...],
"invalid_utf8": "InvalidArgumentError" or "accepted"}}.
"""

import json
import sys

import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the SentencePiece ops)


def main(strings_file, *export_dirs):
    with open(strings_file, encoding="utf-8") as f:
        strings = json.load(f)
    results = {}
    for export_dir in export_dirs:
        graph = tf.saved_model.load(export_dir)
        ids = graph.tokenize(tf.constant(strings))
        text = graph.detokenize(ids)
        dense_text = graph.detokenize(tf.cast(ids[1:2].to_tensor(), tf.int64))
        try:
            graph.tokenize(tf.constant([b"fine", b"bad \xff"]))
            invalid_utf8 = "accepted"
        except tf.errors.InvalidArgumentError:
            invalid_utf8 = "InvalidArgumentError"
        results[export_dir] = {
            "invalid_utf8": invalid_utf8,
            "ids": ids.to_list(),
            "text": [t.decode("utf-8") for t in text.numpy()],
            "dense_text": [t.decode("utf-8") for t in dense_text.numpy()],
        }
    assert not any(name.startswith("lm_keras") for name in sys.modules)
    print(json.dumps(results))


if __name__ == "__main__":
    main(*sys.argv[1:])
