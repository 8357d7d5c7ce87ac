"""Export for TF Serving: `python -m lm_keras.export --model_dir=DIR --export_dir=EXP [--version=N]`.

`--format=huggingface` writes EXP as a Hugging Face GPT-2 folder instead (config.json,
model.safetensors, vocab.json, merges.txt), for a Transformer whose options GPT-2 has; a LoRA
run's adapters are merged into it, as into the SavedModel. `--format=peft` writes a LoRA run's
adapters alone as PEFT's adapter_config.json and adapter_model.safetensors, for its GPT-2 base.

Writes `EXP/<version>/`, a SavedModel with the tokenizer, the decoding loop and the
detokenizer in its graph, atomically (a failed export leaves no half version and
never touches earlier ones), and an example of TF Serving's batching parameters for
it in `EXP/<version>/assets.extra/batching_parameters.txt`. Signatures:
`serving_default` (prompt -> continuation, with the settings below), `generate`
(every setting per prompt), `next_token_logits`, `tokenize` and `detokenize`; see
`lm_keras.serving.generation_module.GenerationModule`. Both answer `continuation`
and `prompt_tokens_dropped` (how many leading prompt tokens did not fit the model's
context), `finish_reason` ("stop" at the tokenizer's end-of-text id or a stop
string, "length" at the token limit) and `completion_tokens`. `serving_default`
samples with a random seed per prompt, or with `--seed` for every prompt: then a
prompt gets the same answer at every request. `--stop` (repeatable) gives
`serving_default` its stop strings and `generate` its default ones; the export
records them, with its other settings, in
`EXP/<version>/assets.extra/generation_settings.json`.

`--jit_compile` chooses the decoding loop's form. Off (the default): a plain graph,
which every server runs. On: an XLA program, several times faster, for servers that
compile XLA: `python -m lm_keras.serve`, `tf.saved_model.load`, and TF Serving started
with `--xla_cpu_compilation_enabled=true` (without that flag TF Serving refuses every
XLA function, on CPU and GPU alike). Stop strings need string ops, which XLA cannot
compile: a request with stop strings (and `serving_default`, with `--stop`) runs the
plain graph's loop even then. There is no `auto`, as training has: an export
does not run where it is made, and no device here says what the server will allow.

`--max_prompts_per_request` refuses requests with more prompts. Batching requests
together is the server's: `python -m lm_keras.serve --max_batch_size`, and TF
Serving's batching parameters (the example file above).
"""

from absl import flags

from lm_keras import generation_settings
from lm_keras.commands import cli

FLAGS = flags.FLAGS


def check_flags():
    """A one-line message for the first bad flag, or None."""
    if not FLAGS.model_dir:
        return "--model_dir is required: the trained run to export"
    if not FLAGS.export_dir:
        return "--export_dir is required: the folder TF Serving serves (it gets a numbered version folder)"
    if FLAGS.format != "saved_model" and FLAGS.version is not None:
        return (
            "--version is for --format=saved_model; a Hugging Face export is the folder --export_dir itself"
        )
    if FLAGS.version is not None and FLAGS.version <= 0:
        return f"--version must be a positive integer; received version={FLAGS.version}"
    problem = (
        generation_settings.export_limits_problem(
            FLAGS.max_prompt_bytes, FLAGS.max_new_tokens_limit, FLAGS.max_prompts_per_request
        )
        or generation_settings.settings_problem(
            FLAGS.max_new_tokens,
            FLAGS.temperature,
            FLAGS.top_k,
            FLAGS.top_p,
            FLAGS.seed,
            min_new_tokens=1,
            max_new_tokens_limit=FLAGS.max_new_tokens_limit,
        )
        or generation_settings.stop_problem(FLAGS.stop)
    )
    return "--" + problem if problem else None


def define_flags():
    """Defines this command's flags; called by `run`, so that importing the module defines none
    (commands share flag names such as --model_dir, and absl allows one definition each)."""
    flags.DEFINE_string("model_dir", None, "the trained run to export")
    flags.DEFINE_string("export_dir", None, "where versions go: TF Serving's --model_base_path")
    flags.DEFINE_enum(
        "format",
        "saved_model",
        ["saved_model", "huggingface", "peft"],
        "saved_model: a TF Serving version folder; huggingface: a GPT-2 folder for transformers; "
        "peft: a LoRA run's adapters for PEFT (of a GPT-2 base)",
    )
    flags.DEFINE_integer(
        "version", None, "the version folder to write; default: one more than the highest there"
    )
    flags.DEFINE_integer(
        "max_new_tokens", generation_settings.MAX_NEW_TOKENS, "serving_default: tokens after each prompt"
    )
    flags.DEFINE_float(
        "temperature", generation_settings.TEMPERATURE, "serving_default: sampling temperature; 0 is greedy"
    )
    flags.DEFINE_integer(
        "top_k", generation_settings.TOP_K, "serving_default: sample among the k most likely tokens; 0: all"
    )
    flags.DEFINE_float(
        "top_p", generation_settings.TOP_P, "serving_default: nucleus sampling mass; 1 keeps all"
    )
    flags.DEFINE_integer(
        "seed",
        None,
        "serving_default: every prompt samples with this seed, so the same prompt gets the same "
        "answer; default: a random seed per prompt",
    )
    flags.DEFINE_multi_string(
        "stop",
        None,
        "serving_default: a continuation ends before the first occurrence of this text (repeatable; "
        "the default stop strings of the generate signature; the end-of-text id always stops)",
    )
    flags.DEFINE_integer(
        "max_prompt_bytes",
        generation_settings.MAX_PROMPT_BYTES,
        "requests with a longer prompt (UTF-8 bytes) are refused",
    )
    flags.DEFINE_integer(
        "max_new_tokens_limit",
        generation_settings.MAX_NEW_TOKENS_LIMIT,
        "requests asking for more new tokens are refused",
    )
    flags.DEFINE_integer(
        "max_prompts_per_request",
        generation_settings.MAX_PROMPTS_PER_REQUEST,
        "requests with more prompts are refused (batching is the server's --max_batch_size)",
    )
    flags.DEFINE_boolean(
        "jit_compile",
        False,
        "the decoding loop as an XLA program (faster; needs a server that compiles XLA) instead of "
        "a plain graph (runs in every server)",
    )


def main(argv):
    cli.reject_arguments(argv)
    problem = check_flags()
    if problem:
        cli.fail(problem, cli.EXIT_USAGE)
    jit_compile = FLAGS.jit_compile
    cli.check_model_dir(FLAGS.model_dir)
    from lm_keras.errors import UserError

    if FLAGS.format == "saved_model":
        from lm_keras.serving.export_dir import resolve_version

        try:  # before TensorFlow loads: a file or a taken version is one line at once
            resolve_version(FLAGS.export_dir, FLAGS.version)
        except UserError as e:
            cli.fail(str(e), cli.EXIT_FAILURE)
    cli.quiet_tensorflow()

    if FLAGS.format == "peft":
        from lm_keras.conversion.peft import export_peft

        try:
            path = export_peft(FLAGS.model_dir, FLAGS.export_dir)
        except UserError as e:
            cli.fail(str(e), cli.EXIT_FAILURE)
        print(f"exported {path}: adapter_config.json, adapter_model.safetensors (PEFT LoRA)", flush=True)
        return
    if FLAGS.format == "huggingface":
        from lm_keras.conversion import export_huggingface

        try:
            path = export_huggingface(FLAGS.model_dir, FLAGS.export_dir)
        except UserError as e:
            cli.fail(str(e), cli.EXIT_FAILURE)
        print(f"exported {path}: config.json, model.safetensors, vocab.json, merges.txt (GPT-2)", flush=True)
        return
    from lm_keras.serving.saved_model_export import export_saved_model

    try:
        path = export_saved_model(
            FLAGS.model_dir,
            FLAGS.export_dir,
            version=FLAGS.version,
            max_new_tokens=FLAGS.max_new_tokens,
            temperature=FLAGS.temperature,
            top_k=FLAGS.top_k,
            top_p=FLAGS.top_p,
            seed=FLAGS.seed,
            stop=FLAGS.stop,
            max_prompt_bytes=FLAGS.max_prompt_bytes,
            max_new_tokens_limit=FLAGS.max_new_tokens_limit,
            max_prompts_per_request=FLAGS.max_prompts_per_request,
            jit_compile=jit_compile,
        )
    except UserError as e:
        cli.fail(str(e), cli.EXIT_FAILURE)
    loop = (
        "an XLA program (serve it where XLA compiles: TF Serving needs --xla_cpu_compilation_enabled=true)"
        if jit_compile
        else "a plain graph (every server runs it)"
    )
    if jit_compile and FLAGS.stop:
        loop += "; serving_default, with --stop strings, runs the plain graph's loop (string ops)"
    print(
        f"exported {path}: signatures serving_default, generate, next_token_logits, tokenize, detokenize; "
        f"decoding loop: {loop}",
        flush=True,
    )


def run():
    cli.run_command(main, define_flags, __name__)


if __name__ == "__main__":
    run()
