"""Serve an export over TF Serving's REST API and OpenAI's: `python -m lm_keras.serve --export_dir=EXP`.

A small server for development and tests: the same URLs, request and answer
formats as TF Serving's REST API, for the highest version in EXP, and in the same
process OpenAI's `/v1/models`, `/v1/completions` and `/v1/chat/completions`
(streamed too) on the same export. Concurrent `serving_default`, `generate` and
streamed requests that arrive within `--batch_timeout_micros` run as one batched call
of up to `--max_batch_size` prompts (TF Serving's batching parameters' names); each
answer equals the request's alone. Production runs the `tensorflow/serving`
container on the same EXP (see README.md).

    curl -s http://127.0.0.1:8501/v1/models/model:predict -d '{"instances": [{"prompt": "ROMEO:"}]}'
    curl -s http://127.0.0.1:8501/v1/completions -d '{"model": "model", "prompt": "ROMEO:"}'
"""

import pathlib

from absl import flags

from lm_keras import generation_settings
from lm_keras.commands import cli

FLAGS = flags.FLAGS
SETTINGS = (
    "model_name",
    "port",
    "max_body_bytes",
    "request_timeout_s",
    "max_batch_size",
    "batch_timeout_micros",
)


def define_flags():
    """Defines this command's flags; called by `run`, so that importing the module defines none
    (commands share flag names such as --model_dir, and absl allows one definition each)."""
    flags.DEFINE_string("export_dir", None, "the export folder (holding numbered versions)")
    flags.DEFINE_string("model_name", "model", "the <name> in /v1/models/<name>")
    flags.DEFINE_string("host", "127.0.0.1", "address to bind; 127.0.0.1 serves this machine only")
    flags.DEFINE_string(
        "served_model_name",
        None,
        "the model's name in OpenAI's API (its `model` field); default: --model_name",
    )
    flags.DEFINE_string(
        "api_key",
        None,
        "every request must then send `Authorization: Bearer KEY` (others get 401); visible in the "
        "process list, so prefer --api_key_file",
    )
    flags.DEFINE_string("api_key_file", None, "a file holding the API key (its first line)")
    flags.DEFINE_integer(
        "port",
        generation_settings.SERVING_PORT,
        "port to listen on (TF Serving's REST port); 0 picks a free one",
    )
    flags.DEFINE_integer(
        "max_body_bytes",
        generation_settings.SERVING_MAX_BODY_BYTES,
        "larger request bodies are refused with 400",
    )
    flags.DEFINE_integer(
        "max_batch_size",
        generation_settings.BATCHING_MAX_BATCH_SIZE,
        "concurrent serving_default/generate requests run as one call of up to this many prompts "
        "(TF Serving's batching parameter); 1 runs each request alone",
    )
    flags.DEFINE_float(
        "request_timeout_s",
        generation_settings.SERVING_REQUEST_TIMEOUT_S,
        "a client that sends nothing for this long (half a body) is hung up on",
    )
    flags.DEFINE_integer(
        "batch_timeout_micros",
        generation_settings.BATCHING_TIMEOUT_MICROS,
        "how long a batch waits for more requests after its first (microseconds)",
    )


def main(argv):
    cli.reject_arguments(argv)
    if not FLAGS.export_dir:
        cli.fail("--export_dir is required: the folder `python -m lm_keras.export` wrote", cli.EXIT_USAGE)
    problem = generation_settings.serving_problem(**{name: FLAGS[name].value for name in SETTINGS})
    if not problem and FLAGS.served_model_name is not None:
        problem = generation_settings.serving_problem(model_name=FLAGS.served_model_name)
        problem = problem and "served_" + problem.replace("model_name=", "served_model_name=")
    if problem:
        cli.fail("--" + problem, cli.EXIT_USAGE)
    api_key = _api_key()
    from lm_keras.errors import UserError
    from lm_keras.serving.export_dir import latest_servable

    try:
        latest_servable(FLAGS.export_dir)  # before TensorFlow loads: a wrong path is one line at once
    except UserError as e:
        cli.fail(str(e), cli.EXIT_FAILURE)
    cli.quiet_tensorflow()
    from lm_keras.serving.model_server import ModelServer

    try:
        server = ModelServer(
            FLAGS.export_dir,
            host=FLAGS.host,
            served_model_name=FLAGS.served_model_name,
            api_key=api_key,
            **{name: FLAGS[name].value for name in SETTINGS},
        )
    except UserError as e:  # the versions changed since the check above
        cli.fail(str(e), cli.EXIT_FAILURE)
    except OSError as e:
        cli.fail(
            f"cannot listen on {FLAGS.host}:{FLAGS.port}: {e.strerror} (pick another --port)",
            cli.EXIT_FAILURE,
        )
    host, port = server.address
    print(
        f"serving {FLAGS.model_name} version {server.version} on http://{host}:{port}/v1/models/"
        f"{FLAGS.model_name}",
        flush=True,
    )
    print(
        f"OpenAI API on http://{host}:{port}/v1 (model {server.openai.model_name!r}"
        f"{', API key required' if api_key else ''})",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


def _api_key():
    """The key of --api_key or --api_key_file, or None; a bad flag fails with one line."""
    if FLAGS.api_key is not None and FLAGS.api_key_file is not None:
        cli.fail("--api_key and --api_key_file: pass one of them", cli.EXIT_USAGE)
    key = FLAGS.api_key
    if FLAGS.api_key_file is not None:
        try:
            lines = pathlib.Path(FLAGS.api_key_file).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            cli.fail(f"--api_key_file={FLAGS.api_key_file}: cannot read it ({e})", cli.EXIT_FAILURE)
        key = lines[0].strip() if lines else ""
        where = f"--api_key_file={FLAGS.api_key_file}"
    else:
        where = "--api_key"
    if key is not None and (not key or any(c.isspace() or not c.isprintable() for c in key)):
        cli.fail(f"{where}: the key must be one word of printable characters, not empty", cli.EXIT_USAGE)
    return key


def run():
    cli.run_command(main, define_flags, __name__)


if __name__ == "__main__":
    run()
