"""`python -m lm_keras.export`: versioned, atomic SavedModels that run without lm_keras."""

import json
import os
import pathlib
import subprocess
import sys
import sysconfig

import pytest

from tests.generation.tiny_models import trained_model_dir
from tests.test_commands import run_until_exit

REPO = pathlib.Path(__file__).resolve().parents[1]
BARE_CHECK = REPO / "tests" / "serving" / "bare_process_check.py"
PROMPTS = ["ROMEO:", "", "First Citizen:\nBefore we proceed", "x€y"]
TIMEOUT = 600


def run_export(*flags):
    return subprocess.run(
        [sys.executable, "-m", "lm_keras.export", *flags],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=REPO,
    )


def run_bare(export, tmp_path, prompts=PROMPTS, generate=None):
    """Loads `export` in a process where lm_keras cannot be imported; returns its JSON answer."""
    request = tmp_path / "request.json"
    request.write_text(
        json.dumps(
            {
                "export": str(export),
                "prompts": prompts,
                "generate": generate
                or {
                    "max_new_tokens": [12],
                    "temperature": [0.9],
                    "top_k": [0],
                    "top_p": [1.0],
                    "seed": list(range(7, 7 + len(prompts))),
                    "stop": [[]],
                },
            }
        ),
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    result = subprocess.run(
        [sys.executable, "-S", str(BARE_CHECK), sysconfig.get_paths()["purelib"], str(request)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def saved_model_proto(version_dir):
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((pathlib.Path(version_dir) / "saved_model.pb").read_bytes())
    return proto.meta_graphs[0]


@pytest.fixture(scope="module")
def model_dir():
    return trained_model_dir("transformer")


def export_with(model_dir, export_dir, *flags):
    result = run_export(
        f"--model_dir={model_dir}",
        f"--export_dir={export_dir}",
        "--temperature=0",
        "--max_new_tokens=12",
        "--top_k=5",
        "--max_prompt_bytes=100",
        *flags,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"exported {export_dir / '1'}" in result.stdout
    return export_dir, result.stdout


@pytest.fixture(scope="module")
def export(model_dir, tmp_path_factory):
    """The default export (no --jit_compile: the plain graph)."""
    export_dir, stdout = export_with(model_dir, tmp_path_factory.mktemp("export"))
    assert "decoding loop: a plain graph (every server runs it)" in stdout
    return export_dir


@pytest.fixture(scope="module")
def xla_export(model_dir, tmp_path_factory):
    export_dir, stdout = export_with(model_dir, tmp_path_factory.mktemp("xla_export"), "--jit_compile")
    assert "decoding loop: an XLA program" in stdout and "--xla_cpu_compilation_enabled=true" in stdout
    return export_dir


@pytest.fixture(scope="module")
def graph_export(model_dir, tmp_path_factory):
    """--nojit_compile said outright: the same plain graph as the default."""
    export_dir, stdout = export_with(model_dir, tmp_path_factory.mktemp("graph_export"), "--nojit_compile")
    assert "decoding loop: a plain graph (every server runs it)" in stdout
    return export_dir


EXPORTS = {"default": "export", "jit": "xla_export", "nojit": "graph_export"}


# The XLA export runs through TF's C API loader in tests/serving/test_session_loader.py, and
# --nojit_compile gives the default's plain graph (the slow
# test_jit_compile_false_is_the_default_graph compares the two graphs).
@pytest.mark.parametrize(
    "setting",
    ["default", pytest.param("jit", marks=pytest.mark.slow), pytest.param("nojit", marks=pytest.mark.slow)],
)
def test_export_runs_in_a_bare_process_with_generates_output(setting, request, model_dir, tmp_path):
    from lm_keras.generation import generate
    from lm_keras.model_dir import load_trained

    export = request.getfixturevalue(EXPORTS[setting])
    answer = run_bare(export / "1", tmp_path)
    assert answer["lm_keras_importable"] is False and answer["lm_keras_loaded"] is False
    trained = load_trained(model_dir)
    assert answer["serving_default"] == generate(
        trained.model, trained.tokenizer, PROMPTS, max_new_tokens=12, temperature=0.0
    )
    # Seeded sampling through the `generate` signature draws the same tokens as in-process generate.
    assert answer["generate"] == generate(
        trained.model, trained.tokenizer, PROMPTS, max_new_tokens=12, temperature=0.9, top_k=0, seed=7
    )
    assert answer["dropped"] == [0, 0, len(PROMPTS[2]) - trained.config.model.seq_len, 0]
    assert answer["invalid_utf8"] == "InvalidArgumentError"


def test_signatures_and_their_defaults(export):
    import tensorflow as tf

    graph = saved_model_proto(export / "1")
    signatures = {k: v for k, v in graph.signature_def.items() if not k.startswith("__")}
    assert {"detokenize", "generate", "next_token_logits", "serving_default", "tokenize"} <= set(signatures)
    assert sorted(signatures["serving_default"].inputs) == ["prompt"]
    outputs = ["completion_tokens", "continuation", "finish_reason", "prompt_tokens_dropped"]
    assert sorted(signatures["serving_default"].outputs) == outputs
    generate = signatures["generate"]
    assert sorted(generate.inputs) == [
        "max_new_tokens",
        "prompt",
        "seed",
        "stop",
        "temperature",
        "top_k",
        "top_p",
    ]
    assert sorted(generate.outputs) == outputs
    defaults = {k: tf.make_ndarray(v).tolist() for k, v in generate.defaults.items()}
    assert defaults == {
        "max_new_tokens": [12],
        "temperature": [0.0],
        "top_k": [5],
        "top_p": [1.0],
        "seed": [-1],
        "stop": [[]],  # (1, 0): no stop strings but the end-of-text id
    }
    assert sorted(signatures["next_token_logits"].outputs) == ["logits"]
    assert sorted(signatures["tokenize"].outputs) == ["lengths", "token_ids"]
    assert sorted(signatures["detokenize"].inputs) == ["token_ids"]
    assert all(s.method_name == "tensorflow/serving/predict" for s in signatures.values())


# serving_default's stops through tf.saved_model.load and per-row stops through the session loader
# are in the default suite (tests/serving); this repeats them through the command and a bare process.
@pytest.mark.slow
def test_stop_strings_of_the_export_stop_serving_default_in_a_bare_process(model_dir, tmp_path):
    """`--stop` (repeatable): serving_default stops there in a process without lm_keras, as
    generate_details does; the export records its stop strings; generate's default is theirs."""
    import tensorflow as tf

    from lm_keras.generation import generate_details
    from lm_keras.model_dir import load_trained
    from lm_keras.serving.saved_model_export import GENERATION_SETTINGS

    trained = load_trained(model_dir)
    # The 20-step model's greedy text is mostly spaces: each row stops at its first two.
    stop = ["  ", "\u00a7\u00a7"]
    export_dir, stdout = export_with(model_dir, tmp_path / "stopped", *(f"--stop={s}" for s in stop))
    assert "decoding loop: a plain graph" in stdout
    expected = generate_details(
        trained.model, trained.tokenizer, PROMPTS, max_new_tokens=12, temperature=0.0, stop=stop
    )
    assert expected[0].finish_reason == "stop"
    answer = run_bare(export_dir / "1", tmp_path)
    assert answer["serving_default"] == [c.text for c in expected]
    assert answer["finish_reason"] == [c.finish_reason for c in expected]
    assert answer["completion_tokens"] == [c.completion_tokens for c in expected]
    settings = json.loads((export_dir / "1" / GENERATION_SETTINGS).read_text(encoding="utf-8"))
    assert settings["stop"] == stop and settings["max_new_tokens"] == 12
    generate = saved_model_proto(export_dir / "1").signature_def["generate"]
    assert tf.make_ndarray(generate.defaults["stop"]).tolist() == [[s.encode() for s in stop]]


def test_graph_holds_only_stock_ops(export):
    graph = saved_model_proto(export / "1")
    ops = {node.op for node in graph.graph_def.node}
    for function in graph.graph_def.library.function:
        ops |= {node.op for node in function.node_def}
    assert not {op for op in ops if op.startswith("Xla") or "PyFunc" in op}, sorted(ops)
    assert "While" in ops  # the decoding loop is in the graph
    assert not must_compile(graph)


@pytest.mark.slow  # a third export of the same model; auto's graph is checked above
def test_jit_compile_false_is_the_default_graph(export, graph_export):
    """The default is the form every server runs: the same functions as --nojit_compile."""

    def functions(version_dir):
        library = saved_model_proto(version_dir).graph_def.library.function
        return sorted((len(f.node_def), sorted(node.op for node in f.node_def)) for f in library)

    assert functions(export / "1") == functions(graph_export / "1")


def must_compile(graph):
    return [f.signature.name for f in graph.graph_def.library.function if f.attr["_XlaMustCompile"].b]


def batching_parameters_message():
    """TF Serving's BatchingParameters message (tensorflow_serving/servables/tensorflow/
    session_bundle_config.proto, its fields as of TF Serving 2.x), built from a descriptor:
    TF Serving's Python package does not ship this proto."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    file = descriptor_pb2.FileDescriptorProto(
        name="session_bundle_config.proto",
        package="tensorflow.serving",
        dependency=["google/protobuf/wrappers.proto"],
        syntax="proto3",
    )
    message = file.message_type.add(name="BatchingParameters")
    field = descriptor_pb2.FieldDescriptorProto
    for number, name in enumerate(
        ["max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads"], start=1
    ):
        message.field.add(
            name=name,
            number=number,
            type=field.TYPE_MESSAGE,
            type_name=".google.protobuf.Int64Value",
            label=field.LABEL_OPTIONAL,
        )
    message.field.add(
        name="thread_pool_name",
        number=5,
        type=field.TYPE_MESSAGE,
        type_name=".google.protobuf.StringValue",
        label=field.LABEL_OPTIONAL,
    )
    message.field.add(name="allowed_batch_sizes", number=6, type=field.TYPE_INT64, label=field.LABEL_REPEATED)
    message.field.add(
        name="pad_variable_length_inputs", number=7, type=field.TYPE_BOOL, label=field.LABEL_OPTIONAL
    )
    pool.Add(file)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters")
    )()


def test_batching_parameters_for_tf_serving_beside_the_saved_model(export):
    from google.protobuf import text_format

    from lm_keras import generation_settings

    path = export / "1" / "assets.extra" / "batching_parameters.txt"
    parameters = text_format.Parse(path.read_text(encoding="utf-8"), batching_parameters_message())
    assert parameters.max_batch_size.value == generation_settings.BATCHING_MAX_BATCH_SIZE == 16
    assert parameters.batch_timeout_micros.value == generation_settings.BATCHING_TIMEOUT_MICROS
    assert parameters.num_batch_threads.value == 1 and parameters.max_enqueued_batches.value > 0
    # TF Serving requires increasing sizes ending at max_batch_size.
    assert list(parameters.allowed_batch_sizes) == [1, 2, 4, 8, 16]
    # Only a file inside the version folder: the SavedModel is unchanged beside it.
    assert sorted(p.name for p in (export / "1").iterdir()) == [
        "assets",
        "assets.extra",
        "fingerprint.pb",
        "saved_model.pb",
        "variables",
    ]


def test_batching_parameters_never_exceed_the_exports_request_limit():
    from google.protobuf import text_format

    from lm_keras.serving.saved_model_export import batching_parameters

    small = text_format.Parse(batching_parameters(max_prompts_per_request=6), batching_parameters_message())
    assert small.max_batch_size.value == 6 and list(small.allowed_batch_sizes) == [1, 2, 4, 6]
    assert list(
        text_format.Parse(batching_parameters(1), batching_parameters_message()).allowed_batch_sizes
    ) == [1]


def test_versions_are_numbered_and_never_overwritten(export, model_dir):
    before = sorted(p.name for p in (export / "1").rglob("*"))
    result = run_export(f"--model_dir={model_dir}", f"--export_dir={export}", "--version=1")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {export / '1'} already exists")
    assert sorted(p.name for p in (export / "1").rglob("*")) == before
    result = run_export("--export_dir=/tmp/x", "--version=0", f"--model_dir={model_dir}")
    assert result.returncode == 2 and "--version must be a positive integer" in result.stderr


def export_without_tensorflow(*flags):
    """(exit code, stderr lines, whether TensorFlow was imported) of `lm_keras.export` run with
    `flags` in a fresh process that stops at the command's exit."""
    stdout, stderr = run_until_exit(["lm_keras.export", *flags])
    code, tensorflow = stdout.split()[-2:]
    return int(code), stderr.splitlines(), tensorflow == "True"


def test_a_taken_version_or_a_file_is_one_line_before_tensorflow_loads(export, model_dir, tmp_path):
    code, lines, tensorflow = export_without_tensorflow(
        f"--model_dir={model_dir}", f"--export_dir={export}", "--version=1"
    )
    assert (code, tensorflow, len(lines)) == (1, False, 1)
    assert lines[0].startswith(f"error: {export / '1'} already exists: versions are never overwritten")
    (tmp_path / "file").write_text("x")
    assert export_without_tensorflow(f"--model_dir={model_dir}", f"--export_dir={tmp_path / 'file'}") == (
        1,
        [f"error: --export_dir={tmp_path / 'file'} is a file; pass a folder (TF Serving's model base path)"],
        False,
    )


@pytest.mark.parametrize(
    "flag, message",
    [
        (
            "--max_prompts_per_request=0",
            "--max_prompts_per_request must be an int > 0; received max_prompts_per_request=0",
        ),
        ("--max_prompt_bytes=-1", "--max_prompt_bytes must be an int > 0; received max_prompt_bytes=-1"),
        ("--seed=-2", "--seed must be an int in [0, 2**62); received seed=-2"),
        ("--stop=", "--stop strings must not be empty"),
        # There is no auto: the export cannot see the server's device (see the command's docstring).
        ("--jit_compile=auto", "flag --jit_compile=auto: ('Non-boolean argument to boolean flag'"),
    ],
)
def test_bad_limits_are_one_line_before_tensorflow_loads(tmp_path, flag, message):
    code, lines, tensorflow = export_without_tensorflow(
        f"--model_dir={tmp_path}", f"--export_dir={tmp_path / 'export'}", flag
    )
    assert (code, tensorflow, len(lines)) == (2, False, 1) and lines[0].startswith(f"error: {message}"), lines


@pytest.mark.parametrize(
    "failing", ["saved_model", pytest.param("batching_parameters", marks=pytest.mark.slow)]
)
def test_a_failed_export_leaves_no_version_and_keeps_earlier_ones(model_dir, tmp_path, monkeypatch, failing):
    import tensorflow as tf

    from lm_keras.serving import saved_model_export

    first = saved_model_export.export_saved_model(model_dir, tmp_path, max_new_tokens=4)
    assert first == tmp_path / "1" and (first / "saved_model.pb").is_file()
    files = {p: p.read_bytes() for p in first.rglob("*") if p.is_file()}

    def broken_save(module, path, signatures=None):
        (pathlib.Path(path) / "saved_model.pb").write_bytes(b"half")
        raise OSError("disk full")

    def broken_parameters(max_prompts_per_request):
        raise OSError("disk full")

    if failing == "saved_model":
        monkeypatch.setattr(tf.saved_model, "save", broken_save)
    else:  # the SavedModel is written whole; the file beside it fails
        monkeypatch.setattr(saved_model_export, "batching_parameters", broken_parameters)
    with pytest.raises(OSError, match="disk full"):
        saved_model_export.export_saved_model(model_dir, tmp_path, max_new_tokens=4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1"]  # no version 2, no temporary folder
    assert {p: p.read_bytes() for p in first.rglob("*") if p.is_file()} == files


# The SentencePiece ops in a SavedModel are tested in a fresh process by
# tests/tokenizers/test_sentence_piece_tokenizer_graph.py, the bare-process export with the
# char tokenizer above.
@pytest.mark.slow
def test_sentencepiece_export_runs_in_a_bare_process(tmp_path):
    """A BPE tokenizer puts tensorflow_text's SentencePiece ops into the graph."""
    from lm_keras.generation import generate
    from lm_keras.serving.generation_module import GenerationModule
    from lm_keras.serving.saved_model_export import save_version
    from lm_keras.tokenizers import train
    from tests.generation.tiny_models import corpus_text, random_model

    tokenizer = train("bpe", corpus_text(), vocab_size=320)
    model = random_model("transformer", tokenizer.vocab_size)
    path = save_version(
        GenerationModule(model, tokenizer, temperature=0.0, max_new_tokens=10), tmp_path / "exp"
    )
    prompts = ["ROMEO: thou", "naïve 🙂"]
    answer = run_bare(path, tmp_path, prompts=prompts)
    assert answer["serving_default"] == generate(
        model, tokenizer, prompts, max_new_tokens=10, temperature=0.0
    )
    assert answer["generate"] == generate(
        model, tokenizer, prompts, max_new_tokens=12, temperature=0.9, seed=7, top_k=0
    )
