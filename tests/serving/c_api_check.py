"""Run in a bare process: runs `serving_default` through TensorFlow's C API, as TF Serving loads models.

Usage: python -S c_api_check.py LIBTENSORFLOW_CC REQUEST_JSON
The process never imports TensorFlow's Python package: it loads libtensorflow_cc
with ctypes and calls `TF_LoadSessionFromSavedModel` (C++ `LoadSavedModel`, the
loader of TF Serving's model server) and `TF_SessionRun`. REQUEST_JSON is
{"export": DIR, "op_libraries": [.so paths to TF_LoadLibrary first], "input": TENSOR
NAME, "output": TENSOR NAME, "prompts": [str], "xla": bool}. With "xla" false the
process first calls `tensorflow::DisableXlaCompilation()`, as TF Serving's `main`
does unless it is started with `--xla_cpu_compilation_enabled=true`. Prints one JSON line:
{"tensorflow_imported": bool, "continuations": [str]} or {"error": CODE, "message": TEXT}.
"""

import ctypes
import json
import sys

# C++ tensorflow::DisableXlaCompilation(), exported by libtensorflow_cc.
DISABLE_XLA_COMPILATION = "_ZN10tensorflow21DisableXlaCompilationEv"
TF_STRING = 7
TF_TSTRING_SIZE = 24  # sizeof(TF_TString)


class TFOutput(ctypes.Structure):
    _fields_ = [("oper", ctypes.c_void_p), ("index", ctypes.c_int)]


def main(library, request_file):
    with open(request_file, encoding="utf-8") as f:
        request = json.load(f)
    tf = ctypes.CDLL(library)
    for name, restype in (
        ("TF_NewStatus", ctypes.c_void_p),
        ("TF_Message", ctypes.c_char_p),
        ("TF_NewGraph", ctypes.c_void_p),
        ("TF_NewSessionOptions", ctypes.c_void_p),
        ("TF_LoadSessionFromSavedModel", ctypes.c_void_p),
        ("TF_GraphOperationByName", ctypes.c_void_p),
        ("TF_AllocateTensor", ctypes.c_void_p),
        ("TF_TensorData", ctypes.c_void_p),
        ("TF_StringGetDataPointer", ctypes.c_void_p),
        ("TF_StringGetSize", ctypes.c_size_t),
        ("TF_LoadLibrary", ctypes.c_void_p),
        ("TF_Dim", ctypes.c_int64),
    ):
        getattr(tf, name).restype = restype
    tf.TF_GetCode.argtypes = [ctypes.c_void_p]
    tf.TF_Message.argtypes = [ctypes.c_void_p]
    tf.TF_GraphOperationByName.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    tf.TF_AllocateTensor.argtypes = [
        ctypes.c_int,
        ctypes.POINTER(ctypes.c_int64),
        ctypes.c_int,
        ctypes.c_size_t,
    ]
    tf.TF_TensorData.argtypes = [ctypes.c_void_p]
    tf.TF_StringInit.argtypes = [ctypes.c_void_p]
    tf.TF_StringCopy.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    tf.TF_StringGetDataPointer.argtypes = [ctypes.c_void_p]
    tf.TF_StringGetSize.argtypes = [ctypes.c_void_p]
    tf.TF_Dim.argtypes = [ctypes.c_void_p, ctypes.c_int]
    tf.TF_LoadLibrary.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    tf.TF_LoadSessionFromSavedModel.argtypes = [
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.POINTER(ctypes.c_char_p),
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_void_p,
    ]
    tf.TF_SessionRun.argtypes = [
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.POINTER(TFOutput),
        ctypes.POINTER(ctypes.c_void_p),
        ctypes.c_int,
        ctypes.POINTER(TFOutput),
        ctypes.POINTER(ctypes.c_void_p),
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_void_p,
    ]
    status = tf.TF_NewStatus()
    if not request["xla"]:
        getattr(tf, DISABLE_XLA_COMPILATION)()

    def check():
        code = tf.TF_GetCode(status)
        if code:
            print(json.dumps({"error": code, "message": tf.TF_Message(status).decode("utf-8", "replace")}))
            sys.exit(0)

    for op_library in request["op_libraries"]:
        tf.TF_LoadLibrary(op_library.encode(), status)
        check()
    graph = tf.TF_NewGraph()
    tags = (ctypes.c_char_p * 1)(b"serve")
    session = tf.TF_LoadSessionFromSavedModel(
        tf.TF_NewSessionOptions(), None, request["export"].encode(), tags, 1, graph, None, status
    )
    check()

    def output(tensor_name):
        op, index = tensor_name.rsplit(":", 1)
        return TFOutput(tf.TF_GraphOperationByName(graph, op.encode()), int(index))

    prompts = [p.encode("utf-8") for p in request["prompts"]]
    dims = (ctypes.c_int64 * 1)(len(prompts))
    tensor = tf.TF_AllocateTensor(TF_STRING, dims, 1, TF_TSTRING_SIZE * len(prompts))
    data = tf.TF_TensorData(tensor)
    for i, prompt in enumerate(prompts):
        tf.TF_StringInit(data + i * TF_TSTRING_SIZE)
        tf.TF_StringCopy(data + i * TF_TSTRING_SIZE, prompt, len(prompt))
    inputs = (TFOutput * 1)(output(request["input"]))
    input_values = (ctypes.c_void_p * 1)(tensor)
    outputs = (TFOutput * 1)(output(request["output"]))
    output_values = (ctypes.c_void_p * 1)()
    tf.TF_SessionRun(session, None, inputs, input_values, 1, outputs, output_values, 1, None, 0, None, status)
    check()
    result = output_values[0]
    data = tf.TF_TensorData(result)
    texts = []
    for i in range(tf.TF_Dim(result, 0)):
        element = data + i * TF_TSTRING_SIZE
        size = tf.TF_StringGetSize(element)
        texts.append(ctypes.string_at(tf.TF_StringGetDataPointer(element), size).decode("utf-8"))
    print(json.dumps({"tensorflow_imported": "tensorflow" in sys.modules, "continuations": texts}))


if __name__ == "__main__":
    main(*sys.argv[1:])
