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

from lm_keras.commands import cli

FLAGS = flags.FLAGS


def define_flags():
    """Defines this command's flags; called by `run`, so that importing the module defines none
    (commands share flag names such as --model_dir, and absl allows one definition each)."""
    flags.DEFINE_string("export_dir", None, "the export folder (holding numbered versions)")
    flags.DEFINE_string("model_name", "model", "the <name> in /v1/models/<name>")
    flags.DEFINE_string("host", "127.0.0.1", "address to bind; 127.0.0.1 serves this machine only")
    flags.DEFINE_integer("port", 8501, "port to listen on (TF Serving's REST port); 0 picks a free one")
    flags.DEFINE_integer("max_body_bytes", 1 << 20, "larger request bodies are refused with 400")
    flags.DEFINE_integer(
        "max_batch_size",
        16,
        "concurrent serving_default/generate requests run as one call of up to this many prompts "
        "(TF Serving's batching parameter); 1 runs each request alone",
    )
    flags.DEFINE_float(
        "request_timeout_s", 30.0, "a client that sends nothing for this long (half a body) is hung up on"
    )
    flags.DEFINE_integer(
        "batch_timeout_micros",
        5000,
        "how long a batch waits for more requests after its first (microseconds)",
    )


def main(argv):
    cli.reject_arguments(argv)
    if not FLAGS.export_dir:
        cli.fail("--export_dir is required: the folder `python -m lm_keras.export` wrote", cli.EXIT_USAGE)
    if not 0 <= FLAGS.port <= 65535:
        cli.fail(f"--port must be in [0, 65535]; received port={FLAGS.port}", cli.EXIT_USAGE)
    if FLAGS.max_body_bytes <= 0:
        cli.fail(
            f"--max_body_bytes must be > 0; received max_body_bytes={FLAGS.max_body_bytes}", cli.EXIT_USAGE
        )
    if not FLAGS.request_timeout_s > 0:
        cli.fail(
            f"--request_timeout_s must be > 0; received request_timeout_s={FLAGS.request_timeout_s}",
            cli.EXIT_USAGE,
        )
    if FLAGS.max_batch_size < 1:
        cli.fail(
            f"--max_batch_size must be >= 1; received max_batch_size={FLAGS.max_batch_size}", cli.EXIT_USAGE
        )
    if FLAGS.batch_timeout_micros < 0:
        cli.fail(
            "--batch_timeout_micros must be >= 0; "
            f"received batch_timeout_micros={FLAGS.batch_timeout_micros}",
            cli.EXIT_USAGE,
        )
    if not FLAGS.model_name or "/" in FLAGS.model_name or ":" in FLAGS.model_name:
        cli.fail(
            f"--model_name must be a name without '/' or ':'; received {FLAGS.model_name!r}", cli.EXIT_USAGE
        )
    cli.quiet_tensorflow()
    from lm_keras.serving.model_server import ModelServer

    try:
        server = ModelServer(
            FLAGS.export_dir,
            model_name=FLAGS.model_name,
            host=FLAGS.host,
            port=FLAGS.port,
            max_body_bytes=FLAGS.max_body_bytes,
            max_batch_size=FLAGS.max_batch_size,
            batch_timeout_micros=FLAGS.batch_timeout_micros,
            request_timeout_s=FLAGS.request_timeout_s,
        )
    except FileNotFoundError as e:
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
