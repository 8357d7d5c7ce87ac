"""Generate text: `python -m lm_keras.generate --model_dir=DIR --prompt=TEXT [flags]`.

Prints each sample (the prompt followed by what the model wrote), separated by a
line of dashes. A sample ends at the tokenizer's end-of-text id, at the first
`--stop` string (repeatable; the text ends before it) or after `--max_new_tokens`.
The decoding loop is one compiled graph; the Transformer uses its key/value cache
and the LSTM carries its state unless `--use_cache=false`.
"""

import sys

from absl import flags

from lm_keras import generation_settings
from lm_keras.commands import cli

FLAGS = flags.FLAGS

SEPARATOR = "-" * 15


def check_flags():
    """A one-line message for the first bad flag, or None."""
    if not FLAGS.model_dir:
        return "--model_dir is required: the trained run to sample from"
    problem = generation_settings.settings_problem(
        FLAGS.max_new_tokens, FLAGS.temperature, FLAGS.top_k, FLAGS.top_p, FLAGS.seed
    )
    if problem:
        return "--" + problem
    if FLAGS.num_samples <= 0:
        return f"--num_samples must be > 0; received num_samples={FLAGS.num_samples}"
    problem = generation_settings.stop_problem(FLAGS.stop)
    return "--" + problem if problem else None


def define_flags():
    """Defines this command's flags; called by `run`, so that importing the module defines none
    (commands share flag names such as --model_dir, and absl allows one definition each)."""
    flags.DEFINE_string("model_dir", None, "the trained run to sample from")
    flags.DEFINE_string("prompt", "", "text to continue; empty starts from a newline")
    flags.DEFINE_integer(
        "max_new_tokens", generation_settings.MAX_NEW_TOKENS, "tokens to generate after the prompt"
    )
    flags.DEFINE_float(
        "temperature", generation_settings.TEMPERATURE, "sampling temperature; 0 is greedy (argmax)"
    )
    flags.DEFINE_integer(
        "top_k", generation_settings.TOP_K, "sample among the k most likely tokens; 0 keeps all"
    )
    flags.DEFINE_float(
        "top_p",
        generation_settings.TOP_P,
        "sample among the most likely tokens that hold this much probability; 1 keeps all",
    )
    flags.DEFINE_integer("seed", None, "random seed (sample i uses seed + i); default: a random one")
    flags.DEFINE_integer("num_samples", 1, "how many samples of the prompt to generate (in one batch)")
    flags.DEFINE_multi_string(
        "stop",
        None,
        "a sample ends at the first occurrence of this text, which it does not print (repeatable; "
        "every sample also ends at the tokenizer's end-of-text id)",
    )
    flags.DEFINE_bool(
        "use_cache",
        True,
        "decode with the key/value cache (LSTM: carried state); false recomputes the whole context "
        "every step",
    )
    flags.DEFINE_enum(
        "jit_compile",
        "auto",
        ["auto", "true", "false"],
        "XLA for the decoding loop; auto uses it for long generations, where faster steps repay the "
        "compile time",
    )


def main(argv):
    cli.reject_arguments(argv)
    problem = check_flags()
    if problem:
        cli.fail(problem, cli.EXIT_USAGE)
    cli.check_model_dir(FLAGS.model_dir)
    cli.quiet_tensorflow()
    from lm_keras.errors import UserError
    from lm_keras.generation import decoder_for, encode_prompts, generate
    from lm_keras.model_dir import load_trained

    try:
        trained = load_trained(FLAGS.model_dir)
        prompts = [FLAGS.prompt] * FLAGS.num_samples
        context = decoder_for(trained.model).context
        encoded = encode_prompts(trained.tokenizer, prompts[:1], context)
        if encoded.dropped[0]:
            kept = len(encoded.ids[0])
            print(
                f"note: the prompt is {kept + encoded.dropped[0]} tokens but the model's context holds "
                f"{context}: it sees only the last {kept} (the first {encoded.dropped[0]} are dropped)",
                file=sys.stderr,
                flush=True,
            )
        jit = None if FLAGS.jit_compile == "auto" else FLAGS.jit_compile == "true"
        if jit and FLAGS.stop:
            print(
                "note: --stop strings are searched with string ops, which XLA cannot compile: the "
                "decoding loop runs as a plain graph",
                file=sys.stderr,
                flush=True,
            )
        texts = generate(
            trained.model,
            trained.tokenizer,
            prompts,
            max_new_tokens=FLAGS.max_new_tokens,
            temperature=FLAGS.temperature,
            top_k=FLAGS.top_k,
            top_p=FLAGS.top_p,
            seed=FLAGS.seed,
            use_cache=FLAGS.use_cache,
            jit_compile=jit,
            stop=FLAGS.stop,
        )
    except UserError as e:
        cli.fail(str(e), cli.EXIT_FAILURE)
    for i, text in enumerate(texts):
        if i:
            print(SEPARATOR)
        print(FLAGS.prompt + text, flush=True)


def run():
    cli.run_command(main, define_flags, __name__)


if __name__ == "__main__":
    run()
