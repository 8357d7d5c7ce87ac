"""Serve an export over TF Serving's REST API: `python -m lm_keras.serve --export_dir=EXP [flags]`.

A small server for development and tests: the same URLs, request and answer
formats as TF Serving's REST API, for the highest version in EXP. Concurrent
`serving_default` and `generate` requests that arrive within `--batch_timeout_micros`
run as one batched call of up to `--max_batch_size` prompts (TF Serving's batching
parameters' names); each answer equals the request's alone. Production
runs the `tensorflow/serving` container on the same EXP (see README.md).

    curl -s http://127.0.0.1:8501/v1/models/model:predict -d '{"instances": [{"prompt": "ROMEO:"}]}'
"""

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
    if problem:
        cli.fail("--" + problem, cli.EXIT_USAGE)
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
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


def run():
    cli.run_command(main, define_flags, __name__)


if __name__ == "__main__":
    run()
