"""`export_saved_model`: a model directory -> `EXPORT_DIR/<version>/`, as TF Serving expects."""

import json
import pathlib

from lm_keras import generation_settings
from lm_keras.files import replace_dir_atomic
from lm_keras.serving.export_dir import resolve_version

# Inside a version folder: TF Serving's place for files that go with a SavedModel but are
# not part of it (its warm-up requests live there too); loaders ignore it.
BATCHING_PARAMETERS = pathlib.PurePath("assets.extra", "batching_parameters.txt")
# The export's generation settings (serving_default's, and the defaults of generate), for people and
# servers that read them without loading the graph: JSON, {"max_new_tokens", "temperature", "top_k",
# "top_p", "seed" (-1: random), "stop", "eot_id" (None: no end-of-text id), "jit_compile"}.
GENERATION_SETTINGS = pathlib.PurePath("assets.extra", "generation_settings.json")


def export_saved_model(model_dir, export_dir, version=None, **module_settings):
    """Exports the trained model of `model_dir` as `export_dir/<version>/`.

    The SavedModel holds the tokenizer, the decoding loop and the detokenizer in
    its graph (see `GenerationModule` for its signatures), so it runs in a process
    that imports only `tensorflow` and `tensorflow_text`, and under TF Serving.
    The export is atomic (see `save_version`).

    Args:
        model_dir: a model directory with a checkpoint.
        export_dir: the folder TF Serving watches (its `--model_base_path`).
        version: positive int, or None for one more than the highest existing.
        **module_settings: keyword arguments of `GenerationModule` (defaults and
            limits: max_new_tokens, temperature, top_k, top_p, seed, stop, max_prompt_bytes,
            max_new_tokens_limit, max_prompts_per_request; jit_compile).

    Returns:
        pathlib.Path of the new version folder.

    Example:

    >>> export_saved_model("runs/shakespeare", "exports/shakespeare", temperature=0.0)
    PosixPath('exports/shakespeare/1')
    """
    from lm_keras.model_dir import load_trained
    from lm_keras.serving.generation_module import GenerationModule

    version = resolve_version(export_dir, version)  # refuse a taken version before loading anything
    trained = load_trained(model_dir, merge_lora=True)  # a LoRA run exports as a plain model
    return save_version(
        GenerationModule(trained.model, trained.tokenizer, **module_settings), export_dir, version
    )


def save_version(module, export_dir, version=None):
    """Saves a `GenerationModule` as `export_dir/<version>/`, atomically.

    It is written into a hidden temporary folder inside `export_dir` (not a
    number, so TF Serving ignores it) and renamed to `<version>` only when
    complete, with an example of TF Serving's batching parameters for it in
    `<version>/assets.extra/batching_parameters.txt` (see `batching_parameters`) and
    its generation settings, stop strings included, in
    `<version>/assets.extra/generation_settings.json` (see `GENERATION_SETTINGS`).
    A failed save removes its temporary folder and leaves every earlier version
    untouched; an existing version is never overwritten.

    Returns:
        pathlib.Path of the new version folder.
    """
    import tensorflow as tf

    from lm_keras.serving.generation_module import stock_ops_only

    export_dir = pathlib.Path(export_dir)
    version = resolve_version(export_dir, version)
    final = export_dir / str(version)

    def fill(tmp):
        with stock_ops_only():  # saving traces the signatures: keep those traces servable
            tf.saved_model.save(module, str(tmp), signatures=module.signatures())
        (tmp / BATCHING_PARAMETERS).parent.mkdir()
        parameters = batching_parameters(module.max_prompts_per_request)
        (tmp / BATCHING_PARAMETERS).write_text(parameters, encoding="utf-8")
        settings = {**module.settings, "eot_id": module.eot_id, "jit_compile": module.jit_compile}
        (tmp / GENERATION_SETTINGS).write_text(
            json.dumps(settings, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )

    # The version appears whole or not at all (resolve_version refused a taken one above).
    replace_dir_atomic(fill, final)
    return final


def batching_parameters(
    max_prompts_per_request,
    batching_max_batch_size=generation_settings.BATCHING_MAX_BATCH_SIZE,
    batch_timeout_micros=generation_settings.BATCHING_TIMEOUT_MICROS,
):
    """TF Serving's batching parameters for an export, in the text format of its
    `BatchingParameters` (session_bundle_config.proto), for
    `tensorflow_model_server --enable_batching --batching_parameters_file=FILE`.

    A batch holds at most `batching_max_batch_size` prompts, and never more than
    the export's `max_prompts_per_request` (its graph refuses larger requests, merged
    ones too); it runs when full or `batch_timeout_micros` after its first request.
    `allowed_batch_sizes` pads each batch to a power of two, the batch sizes an XLA
    export compiles for anyway (`lm_keras.generation.decode_loop.bucket`); one batch
    thread, since on a CPU one batch already uses every core.

    Example:

    >>> print(batching_parameters(64))
    # TF Serving's batching parameters for this export ...
    max_batch_size { value: 16 }
    ...
    """
    size = min(max_prompts_per_request, batching_max_batch_size)
    allowed = sorted({min(1 << i, size) for i in range(size.bit_length() + 1)})
    return "\n".join(
        [
            "# TF Serving's batching parameters for this export (an example to tune):",
            "#   tensorflow_model_server --enable_batching --batching_parameters_file=THIS_FILE ...",
            "# Requests that arrive within batch_timeout_micros run as one call of up to",
            "# max_batch_size prompts, padded to the next allowed batch size.",
            f"max_batch_size {{ value: {size} }}",
            f"batch_timeout_micros {{ value: {batch_timeout_micros} }}",
            "max_enqueued_batches { value: 64 }",
            "num_batch_threads { value: 1 }",
            *(f"allowed_batch_sizes: {n}" for n in allowed),
            "",
        ]
    )
