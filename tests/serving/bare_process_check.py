"""Run in a bare process: loads an export with only tensorflow and tensorflow_text.

Usage: python -S bare_process_check.py SITE_PACKAGES REQUEST_JSON
(`-S` skips site-packages' .pth files, so lm_keras's editable install is not on the
path; SITE_PACKAGES is appended by hand for TensorFlow.) REQUEST_JSON is
{"export": DIR, "prompts": [...], "generate": {setting: [values]}} (the settings may hold
"stop", rows of strings). Prints one JSON line: {"lm_keras_importable": bool,
"serving_default": [...], "finish_reason": [...], "completion_tokens": [...], "dropped": [...],
"generate": [...], "invalid_utf8": "InvalidArgumentError" or "accepted"}.
"""

import json
import sys


def main(site_packages, request_file):
    sys.path.append(site_packages)
    try:
        import lm_keras  # noqa: F401

        importable = True
    except ImportError:
        importable = False
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the SentencePiece ops)

    with open(request_file, encoding="utf-8") as f:
        request = json.load(f)
    loaded = tf.saved_model.load(request["export"])
    prompts = tf.constant([p.encode("utf-8") for p in request["prompts"]])
    default = loaded.signatures["serving_default"](prompt=prompts)
    settings = {
        k: tf.constant(
            v,
            dtype={"max_new_tokens": tf.int32, "top_k": tf.int32, "seed": tf.int64, "stop": tf.string}.get(
                k, tf.float32
            ),
            shape=[1, 0] if k == "stop" and v == [[]] else None,
        )
        for k, v in request["generate"].items()
    }
    generated = loaded.signatures["generate"](prompt=prompts, **settings)
    try:
        loaded.signatures["serving_default"](prompt=tf.constant([b"bad \xff"]))
        invalid = "accepted"
    except tf.errors.InvalidArgumentError:
        invalid = "InvalidArgumentError"
    print(
        json.dumps(
            {
                "lm_keras_importable": importable,
                "lm_keras_loaded": any(name.startswith("lm_keras") for name in sys.modules),
                "serving_default": [t.decode("utf-8") for t in default["continuation"].numpy()],
                "finish_reason": [t.decode("utf-8") for t in default["finish_reason"].numpy()],
                "completion_tokens": default["completion_tokens"].numpy().tolist(),
                "dropped": default["prompt_tokens_dropped"].numpy().tolist(),
                "generate": [t.decode("utf-8") for t in generated["continuation"].numpy()],
                "invalid_utf8": invalid,
            }
        )
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
