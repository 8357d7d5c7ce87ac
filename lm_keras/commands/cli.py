"""What every command line shares: one-line errors, exit codes, quiet TensorFlow logs."""

import contextlib
import os
import sys
import tempfile

from absl import app, flags, logging

EXIT_USAGE = 2  # bad flags or flag values, refused before TensorFlow loads
EXIT_FAILURE = 1  # bad input found while running (missing files, bad text, a diverged run)


def run_command(main, define_flags, module_name):
    """Defines a command's flags, then runs `main` under absl with `parse_flags`.

    absl's `--help` prints the `__main__` module's docstring, and `--helpshort` lists the
    flags of the module named by `sys.argv[0]`: under `python -m lm_keras.<command>` that is
    the one-line entry module, and under a console script the script. So the command's
    docstring becomes the main module's, and its flags are listed under that name too.

    A `define_flags` that returns {heading: [flag names]} has its flags listed under those
    headings instead, in that order (absl alone lists one module's flags alphabetically).
    """
    sys.modules["__main__"].__doc__ = sys.modules[module_name].__doc__
    groups = define_flags()
    if groups:
        sys.modules["__main__"].__doc__ += grouped_help(groups)
    else:
        for flag in flags.FLAGS.get_flags_for_module(module_name):
            flags.FLAGS.register_flag_by_module(sys.argv[0], flag)
    app.run(main, flags_parser=parse_flags)


def grouped_help(groups):
    """The flags of {heading: [flag names]}, listed under their headings as absl lists a module's."""
    lines = []
    for heading, names in groups.items():
        lines.append(f"\n{heading}:")
        for name in names:
            flag = flags.FLAGS[name]
            text = flag.help + (f" (default: {flag.default!r})" if flag.default is not None else "")
            lines.append(flags.text_wrap(f"--{name}: {text}", indent="    ", firstline_indent="  "))
    return "\n".join(lines) + "\n"


def fail(message, code):
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def parse_flags(argv):
    """absl's flag parser, but a bad flag is one line on stderr and exit code 2."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        # A flagfile that cannot be opened: absl raises while handling open()'s OSError, which
        # names the file that failed (a nested --flagfile too); absl's own text starts "ERROR::".
        cause = e.__context__
        if isinstance(e, flags.CantOpenFlagFileError) and isinstance(cause, OSError):
            fail(f"--flagfile={cause.filename} cannot be read ({cause.strerror}): check the path", EXIT_USAGE)
        fail(f"{e} (see --helpshort)", EXIT_USAGE)


def reject_arguments(argv):
    """Every option is a flag: anything else on the command line is a usage error."""
    if len(argv) > 1:
        fail(f"unexpected arguments {argv[1:]}: every option is a --flag (see --helpshort)", EXIT_USAGE)


def check_model_dir(model_dir):
    """Reads MODEL_DIR/config.json before TensorFlow loads: a directory without a readable model
    is one line (exit 1) at once, not after seconds of start-up."""
    from lm_keras.errors import UserError
    from lm_keras.model_dir import read_config

    try:
        read_config(model_dir)
    except UserError as e:
        fail(str(e), EXIT_FAILURE)


def quiet_tensorflow():
    """Loads TensorFlow without its start-up chatter in the user's terminal.

    TensorFlow 2.21 prints its oneDNN, CUDA-probe and absl::InitializeLog notices to
    stderr whatever TF_CPP_MIN_LOG_LEVEL says, so stderr is held aside while it
    loads and probes devices (and replayed if loading fails). `--verbosity=0`
    (absl's flag) keeps everything, TensorFlow's Python INFO logs included.
    """
    if flags.FLAGS["verbosity"].present:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.set_verbosity(logging.WARNING)
    with _stderr_held():
        import tensorflow as tf

        tf.config.list_physical_devices()


@contextlib.contextmanager
def _stderr_held():
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            held.seek(0)
            os.write(2, held.read())
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def explicit_flags(names):
    """{name: value} of the flags the user gave (on the command line or in a --flagfile)."""
    return {name: flags.FLAGS[name].value for name in names if flags.FLAGS[name].present}
