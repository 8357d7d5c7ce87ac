"""Run in a bare process: runs exports through a TF1 session loader, as TF Serving does.

Usage: python -S session_loader_check.py SITE_PACKAGES SESSION_MODEL_PY REQUEST_JSON
(`-S` skips site-packages' .pth files, so lm_keras's editable install is not on the
path; SITE_PACKAGES is appended by hand for TensorFlow.) SESSION_MODEL_PY is
lm_keras/serving/session_model.py, loaded by its path: it imports only TensorFlow.
REQUEST_JSON is {"tensorflow_text": bool, "exports": [{"path": DIR, "calls": [{"signature":
NAME, "inputs": {NAME: nested lists}}]}]}; with "tensorflow_text" false, tensorflow_text
cannot be imported, as in a stock TensorFlow or TF Serving build. Prints one JSON line:
{"lm_keras_loaded": bool, "tensorflow_text_loaded": bool, "results": [[{output: nested
lists, strings decoded} or {"error": TYPE, "message": TEXT}]]}.
"""

import importlib.util
import json
import sys


class _NoTensorflowText:
    """A meta path finder that makes `import tensorflow_text` fail, as in a stock TF build."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "tensorflow_text":
            raise ImportError("tensorflow_text is blocked in this process")
        return None


def main(site_packages, session_model_py, request_file):
    sys.path.append(site_packages)
    import numpy as np

    spec = importlib.util.spec_from_file_location("session_model", session_model_py)
    session_model = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(session_model)

    with open(request_file, encoding="utf-8") as f:
        request = json.load(f)
    if not request["tensorflow_text"]:
        sys.meta_path.insert(0, _NoTensorflowText())
    results = []
    for export in request["exports"]:
        model = session_model.SessionModel(export["path"])
        answers = []
        for call in export["calls"]:
            inputs = model.signatures[call["signature"]].inputs
            feed = {name: _array(value, inputs[name].dtype, np) for name, value in call["inputs"].items()}
            try:
                outputs = model.run(call["signature"], feed)
            except Exception as e:  # an error raised in the graph is a result to check
                answers.append({"error": type(e).__name__, "message": str(e)})
                continue
            answers.append({name: _json(value) for name, value in outputs.items()})
        model.close()
        results.append(answers)
    print(
        json.dumps(
            {
                "lm_keras_loaded": any(name.startswith("lm_keras") for name in sys.modules),
                "tensorflow_text_loaded": "tensorflow_text" in sys.modules,
                "results": results,
            }
        )
    )


def _array(value, dtype, np):
    if dtype.kind == "O":
        return np.array(_map(value, lambda s: s.encode("utf-8", "surrogateescape")), dtype=object)
    return np.array(value, dtype=dtype)


def _json(array):
    return _map(array.tolist(), lambda v: v.decode("utf-8", "surrogateescape") if isinstance(v, bytes) else v)


def _map(value, fn):
    return [_map(v, fn) for v in value] if isinstance(value, list) else fn(value)


if __name__ == "__main__":
    main(*sys.argv[1:])
