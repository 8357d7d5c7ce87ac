"""Training on task examples (a .jsonl corpus): the loss on completions, packed examples kept
apart, the end-of-text id a run trained without one gains, accumulation and kill -9 resume."""

import dataclasses
import json

import keras
import numpy as np
import pytest

from lm_keras import model_dir as md
from lm_keras import tasks
from lm_keras.config import Config
from lm_keras.models import build_model
from lm_keras.tokenizers.char_tokenizer import CharTokenizer
from lm_keras.training.evaluation import per_example_loss
from lm_keras.training.trainer import Trainer
from tests.training.helpers import TINY, checkpoint_weights, max_abs_diff, run_train
from tests.training.test_grad_accum import first_step_gradient, relative_difference
from tests.training.test_reliability import _kill_during_run

# A model of a few thousand parameters, without XLA (its compile would be most of a run).
BASE = dict(
    tokenizer="char",
    num_layers=1,
    num_heads=2,
    hidden_dim=16,
    seq_len=16,
    batch_size=8,
    max_steps=3,
    learning_rate=1e-3,
    warmup_steps=0,
    dropout=0.0,
    eval_every=1000,
    eval_batches=1,
    log_every=1,
    checkpoint_every=1000,
    sample_tokens=0,
    seed=3,
    jit_compile="false",
)


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    """minGPT's addition, 300 training and 40 validation examples of at most 10 characters."""
    root = tmp_path_factory.mktemp("addition")
    splits, info = tasks.make_splits("addition", seed=1, counts={"train": 300, "validation": 40, "test": 1})
    tasks.write_splits(root / "task", splits, info)
    return root / "task"


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory, examples):
    from lm_keras.data.prepare import prepare

    out = tmp_path_factory.mktemp("prepared") / "data"
    prepare(
        str(examples / "train.jsonl"),
        out,
        validation_data=str(examples / "validation.jsonl"),
        log=lambda line: None,
    )
    return out


def _trainer(model_dir, dataset_dir, **fields):
    config = Config().replace(**{**BASE, "corpus": str(dataset_dir), **fields})
    config, dataset = md.prepare_run(model_dir, config, log=lambda line: None)
    trainer = Trainer(config, dataset, model_dir, log=lambda line: None)
    trainer.prepare()
    return trainer


def test_a_packed_step_scores_each_example_as_if_alone(tmp_path, dataset_dir):
    trainer = _trainer(tmp_path / "run", dataset_dir, seq_len=32)
    x, y, w, s = (t.numpy() for t in next(trainer.train_batches(0)))
    eot = trainer.examples["eot_id"]
    assert (x == eot).sum() > x.shape[0]  # several examples in a window
    # The pipeline's segments: each example its own, from the index (here one end-of-text each).
    np.testing.assert_array_equal(s, np.cumsum(x == eot, axis=1) - (x == eot))
    model = trainer.model
    before = [v.numpy() for v in model.weights]
    step_loss = float(trainer.make_train_step()((x, y, w, s)))
    for variable, value in zip(model.weights, before):
        variable.assign(value)  # the weights the step started from
    total, count = 0.0, 0.0
    for row in range(x.shape[0]):
        ends = [i + 1 for i in np.flatnonzero(np.diff(s[row]))] + [x.shape[1]]
        start = 0
        for end in ends:
            if end > start:
                alone = model(x[row : row + 1, start:end])  # from position 0, nothing before it
                nll = per_example_loss("next_token", y[row : row + 1, start:end], alone)
                total += float(np.sum(nll.numpy() * w[row : row + 1, start:end]))
            start = end
        count += float(w[row].sum())
    assert step_loss == pytest.approx(total / count, rel=1e-5)
    # Completion targets only: the prompts' targets have weight 0.
    assert 0 < w.sum() < w.size


def test_loss_on_all_weights_every_target(tmp_path, dataset_dir):
    trainer = _trainer(tmp_path / "run", dataset_dir, loss_on="all")
    _, _, w, _ = next(trainer.train_batches(0))
    assert float(np.asarray(w).min()) == 1.0


def test_segments_stay_off_for_padded_examples_and_the_lstm(tmp_path, dataset_dir):
    assert _trainer(tmp_path / "packed", dataset_dir).segments
    assert not _trainer(tmp_path / "padded", dataset_dir, packing="padded").segments
    lstm = _trainer(tmp_path / "lstm", dataset_dir, model="lstm", embedding_dim=8)
    assert not lstm.segments and len(next(lstm.train_batches(0))) == 3


def test_a_packed_conversation_is_one_segment_across_its_messages(tmp_path):
    # Every message of the chat template ends with the end-of-text id: the segments come from
    # the example index, so a reply still attends to its question.
    from lm_keras.data.prepare import prepare

    conversation = {
        "messages": [
            {"role": "user", "content": "Who?"},
            {"role": "assistant", "content": "A friend."},
            {"role": "user", "content": "Whence?"},
            {"role": "assistant", "content": "Verona."},
        ]
    }
    corpus = tmp_path / "chat.jsonl"
    corpus.write_text("".join(json.dumps(conversation) + "\n" for _ in range(12)))
    data = prepare(str(corpus), tmp_path / "data", log=lambda line: None)
    trainer = _trainer(tmp_path / "run", data.path, seq_len=96, batch_size=2)
    x, _, w, s = (t.numpy() for t in next(trainer.train_batches(0)))
    eot = trainer.examples["eot_id"]
    length = int(np.flatnonzero(x[0] == eot)[3]) + 1  # the conversation's four messages
    assert (s[0, :length] == 0).all() and s[0, length] == 1
    assert (x[0, :length] == eot).sum() == 4


def test_the_gradient_of_n_micro_batches_of_examples_is_their_batchs(tmp_path, dataset_dir):
    # Each micro-batch holds another number of completion targets: every one is divided by the
    # whole step's count, so the sum is the big batch's gradient.
    fields = dict(seq_len=16, packing="packed")
    whole_loss, whole = first_step_gradient(tmp_path / "whole", dataset_dir, batch_size=8, **fields)
    accum_loss, accum = first_step_gradient(
        tmp_path / "accum", dataset_dir, batch_size=2, grad_accum_steps=4, **fields
    )
    assert accum_loss == pytest.approx(whole_loss, rel=1e-6)
    assert relative_difference(accum, whole) <= 1e-5


def test_a_run_without_end_of_text_gains_it_by_one_embedding_row(tmp_path, dataset_dir, examples):
    # A run trained before end-of-text ids: its char tokenizer has none.
    config = Config().replace(**{**BASE, "corpus": str(dataset_dir)})
    characters = "".join(sorted(set("0123456789+=")))
    old = CharTokenizer(characters)
    assert old.eot_id is None
    keras.utils.set_random_seed(0)
    base_config = dataclasses.replace(
        config, model=dataclasses.replace(config.model, vocab_size=old.vocab_size)
    )
    base = build_model(base_config.model)
    md.write_converted(tmp_path / "base", base_config, old, base, None)
    # Fine-tuning prepares the examples with the base's tokenizer and the id appended.
    model_dir = tmp_path / "tuned"
    result = run_train(
        model_dir,
        *TINY,
        "--num_layers=1",
        "--hidden_dim=16",
        "--seq_len=16",
        "--max_steps=2",
        f"--init_from={tmp_path / 'base'}",
        f"--corpus={examples / 'train.jsonl'}",
        f"--validation_data={examples / 'validation.jsonl'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    tokenizer = json.loads((model_dir / "tokenizer" / "tokenizer.json").read_text())
    assert tokenizer["vocab_size"] == old.vocab_size + 1 and tokenizer["eot_id"] == old.vocab_size
    assert json.loads((model_dir / "config.json").read_text())["model"]["vocab_size"] == old.vocab_size + 1
    results = json.loads((model_dir / "results.json").read_text())
    assert results["steps"] == 2 and results["completion_loss"] > 0
    # The restored start: every base weight as it was, the new row the mean of the others.
    grown = build_model(dataclasses.replace(base_config.model, vocab_size=old.vocab_size + 1))
    md.restore_weights(grown, tmp_path / "base")
    for mine, theirs in zip(grown.weights, base.weights):
        a, b = mine.numpy(), theirs.numpy()
        if a.shape == b.shape:
            np.testing.assert_array_equal(a, b)
        else:
            np.testing.assert_array_equal(a[: b.shape[0]], b)
            np.testing.assert_allclose(a[-1], b.mean(axis=0), rtol=1e-6)


def test_sigkill_then_rerun_trains_examples_exactly(tmp_path, examples):
    flags = [
        *TINY,
        "--hidden_dim=16",
        "--seq_len=16",
        "--max_steps=16",
        "--checkpoint_every=2",
        "--log_every=1",
        "--eval_every=8",
        "--deterministic",
        "--dropout=0.1",
        f"--corpus={examples / 'train.jsonl'}",
        f"--validation_data={examples / 'validation.jsonl'}",
    ]
    straight = tmp_path / "straight"
    assert run_train(straight, *flags).returncode == 0
    killed = tmp_path / "killed"
    reached = _kill_during_run(killed, 6, 0.0, flags)
    assert 0 < reached < 16
    result = run_train(killed, *flags)
    assert result.returncode == 0, result.stderr[-3000:]

    def losses(run):
        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        return [r.get("loss") for r in records]

    assert losses(killed) == losses(straight)
    weights = checkpoint_weights(killed / "checkpoints"), checkpoint_weights(straight / "checkpoints")
    assert max_abs_diff(*weights) == 0.0


@pytest.mark.parametrize(
    "fields",
    [
        dict(model="lstm", embedding_dim=8),
        # The documented Sequential predicts one token after its window: one completion target
        # per window, its context whatever precedes it (see example_train_dataset).
        dict(model="documented_lstm", embedding_dim=8, dense_units=16),
    ],
    ids=["lstm", "documented_lstm"],
)
def test_the_lstms_train_on_examples(tmp_path, dataset_dir, fields):
    trainer = _trainer(tmp_path / "run", dataset_dir, max_steps=3, **fields)
    results = trainer.run()
    assert results["steps"] == 3 and results["examples"] == 40
    assert 0 < results["completion_loss"] < 10 and results["val_bits_per_char"] is None
