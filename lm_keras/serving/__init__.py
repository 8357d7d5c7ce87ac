"""Serving: the SavedModel export and a TF-Serving-compatible REST server.

    from lm_keras.serving.saved_model_export import export_saved_model
    export_saved_model("runs/shakespeare", "exports/shakespeare")   # -> exports/shakespeare/1

    from lm_keras.serving.model_server import ModelServer
    ModelServer("exports/shakespeare", port=8501).serve_forever()

`generation_module.GenerationModule` is what the export saves: tokenizer, decoding
loop and detokenizer in one graph, with in-graph input checks. `export_dir` reads an
export folder's versions (TensorFlow-free, so the commands check paths before
TensorFlow loads). `rest_api` holds TF Serving's JSON request and response format.
The submodules are imported one by one, so the server loads without Keras or the
models.
"""
