"""keras-hub's GPT2CausalLM against lm_keras on one task: the same examples, size, tokenizer and steps.

Issue 24's third measurement of the article's claim. The "name" task of `lm_keras.tasks`
(prompt "Name in: LINE" and a newline, completion the first proper name), its default seed
and splits; a byte-level BPE of `--vocab_size` ids with "<|endoftext|>" trained on its
training text by Hugging Face `tokenizers` (vocab.json, merges.txt, as
tests/conversion/checkpoints.py makes them, then "<|endoftext|>" moved from id 0 to the last
id, GPT-2's layout: keras-hub pads with id 0, and its `generate` stops at once when that is
the end token; `--end_of_text_first` keeps it at 0). Then, from a random start, per seed:

- `keras_hub`: `GPT2Tokenizer` on those files, `GPT2CausalLMPreprocessor(sequence_length=seq_len)`,
  a `GPT2Backbone` of 4 layers, 4 heads, width 128, MLP 512, `max_sequence_length=T` (dropout
  0, as ours), `GPT2CausalLM`, trained by `fit` on the strings prompt + completion as
  keras-hub users do: one example a row, "<|endoftext|>" before and after it, padded to T,
  the loss on every token but the padding (the prompt's included). Scored by greedy
  `generate` (stopping at its end token), the answer cut after the prompt; beside it,
  `plain_loop`, the same model decoded by full forward passes (no `generate`).
- `lm_keras` variants: the same tokenizer (`ByteLevelBPETokenizer` on the same files), the
  examples prepared by `lm_keras.data.prepare.prepare`, trained by
  `lm_keras.training.trainer.train` as a Transformer of the same shape (learned positions,
  biases and GPT-2's tanh GELU, so the parameters match to the row), scored by
  `score_examples` as `python -m lm_keras.evaluate --corpus=test.jsonl` scores it. `ours` is
  the defaults (the loss on completions and their end-of-text, examples packed several to a
  window); `ours_loss_all` puts the loss on the prompts too; `ours_padded` one example a
  window; `ours_padded_loss_all` both, keras-hub's recipe in lm_keras.

Every run takes the same optimizer steps, windows a step, AdamW (lm_keras's settings: beta2
0.99, weight decay 0.1 on matrices and embeddings, clipping at 1.0) and warm-up + cosine
schedule. Tokens/s counts window positions (padding included) per second of training steps
after the first ten (compilation excluded); `loss_tokens_per_step` and `examples_per_step`
say what a step holds. The JSON (default experiments/keras_hub_tasks.json) is written after
every run.

    .venv/bin/python -m experiments.keras_hub_tasks
"""

import json
import pathlib
import statistics
import time

from benchmarks import common

common.setup_environment()

TASK = "name"
VARIANTS = {
    "ours": {},
    "ours_loss_all": {"loss_on": "all"},
    "ours_padded": {"packing": "padded"},
    "ours_padded_loss_all": {"packing": "padded", "loss_on": "all"},
}
SIZE = {"num_layers": 4, "num_heads": 4, "hidden_dim": 128, "mlp_dim": 512}
OUT = pathlib.Path(__file__).resolve().parent / "keras_hub_tasks.json"


def write_tokenizer(examples, folder, vocab_size, end_of_text_first=False):
    """vocab.json and merges.txt of a byte-level BPE of the training text, "<|endoftext|>" included.

    Hugging Face's trainer gives a special token the first id, 0, as tests/conversion/checkpoints.py
    leaves it; keras-hub's `GPT2Tokenizer` pads with id 0 whatever the vocabulary, and its
    sampler stops a row at any end token after the prompt, padding included, so with
    "<|endoftext|>" at 0 `generate` stops before its first token and every answer is "". By
    default the token is moved last, GPT-2's layout (the same merges, the other ids one lower).
    """
    from tokenizers.implementations import ByteLevelBPETokenizer

    from lm_keras.tokenizers.byte_level_bpe_tokenizer import END_OF_TEXT

    tokenizer = ByteLevelBPETokenizer(add_prefix_space=False)
    tokenizer.train_from_iterator(
        [p + c for p, c in examples], vocab_size=vocab_size, special_tokens=[END_OF_TEXT], show_progress=False
    )
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_model(str(folder))
    vocab_path = folder / "vocab.json"
    if not end_of_text_first:
        vocab = json.loads(vocab_path.read_text(encoding="utf-8"))
        order = sorted((i, t) for t, i in vocab.items() if t != END_OF_TEXT)
        vocab = {**{t: n for n, (_, t) in enumerate(order)}, END_OF_TEXT: len(order)}
        vocab_path.write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    return vocab_path, folder / "merges.txt"


def schedule_and_optimizer(args, variables):
    """lm_keras's AdamW and schedule (`lm_keras.training.optimizers`) for other variables."""
    from lm_keras.training.optimizers import make_optimizer

    return make_optimizer(train_config(args).train, variables)


def train_config(args):
    from lm_keras.config import Config

    return Config().replace(
        max_steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        min_learning_rate=args.learning_rate / 10,
        warmup_steps=min(100, args.steps // 10),
    )


class StepTimer:
    """Times fit's batches; the rate skips the first `skip` (compilation)."""

    def __init__(self, skip=10):
        import keras

        timer = self

        class Callback(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                timer.ends.append(time.perf_counter())

        self.callback, self.ends, self.skip = Callback(), [], skip

    def steps_per_second(self):
        ends = self.ends[self.skip :] if len(self.ends) > self.skip + 1 else self.ends
        return (len(ends) - 1) / max(ends[-1] - ends[0], 1e-9)


def run_keras_hub(splits, vocab, merges, args, seed):
    import keras
    import keras_hub
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    seq_len = args.seq_len
    tokenizer = keras_hub.models.GPT2Tokenizer(vocabulary=str(vocab), merges=str(merges))
    preprocessor = keras_hub.models.GPT2CausalLMPreprocessor(tokenizer, sequence_length=seq_len)
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=tokenizer.vocabulary_size(),
        num_layers=SIZE["num_layers"],
        num_heads=SIZE["num_heads"],
        hidden_dim=SIZE["hidden_dim"],
        intermediate_dim=SIZE["mlp_dim"],
        dropout=0.0,
        max_sequence_length=seq_len,
    )
    model = keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=preprocessor)
    optimizer = schedule_and_optimizer(args, model.trainable_variables)
    model.compile(optimizer=optimizer, sampler="greedy")
    texts = [p + c for p, c in splits["train"]]
    data = (
        tf.data.Dataset.from_tensor_slices(texts)
        .shuffle(len(texts), seed=seed, reshuffle_each_iteration=True)
        .repeat()
        .batch(args.batch_size)
    )
    timer = StepTimer()
    started = time.monotonic()
    history = model.fit(data, steps_per_epoch=args.steps, epochs=1, verbose=0, callbacks=[timer.callback])
    train_seconds = time.monotonic() - started
    # The share of a batch's positions in the loss: every token of the example, its end token too.
    lengths = [len(tokenizer(t)) + 2 for t in texts]
    prompts = [p for p, _ in splits["test"]]
    started = time.monotonic()
    outputs = []
    for begin in range(0, len(prompts), args.generate_batch):
        batch = prompts[begin : begin + args.generate_batch]
        outputs += [
            o.decode("utf-8") if isinstance(o, bytes) else str(o)
            for o in model.generate(batch, max_length=seq_len)
        ]
    generate_seconds = time.monotonic() - started
    first_ids, loop_answers = plain_greedy(model, preprocessor, prompts, max_new_tokens=16)
    answers, not_prefixed = [], 0
    for prompt, output in zip(prompts, outputs):
        if output.startswith(prompt):
            answers.append(output[len(prompt) :])
        else:  # the detokenized prompt differs (it did not here): keep what follows its last newline
            not_prefixed += 1
            answers.append(output.split("\n", 1)[-1] if "\n" in output else "")
    truncated = sum(n > seq_len for n in lengths)
    return {
        **score(answers, splits["test"]),
        "final_train_loss": float(history.history["loss"][-1]),
        "tokens_per_sec": args.batch_size * seq_len * timer.steps_per_second(),
        "train_seconds": train_seconds,
        "generate_seconds": generate_seconds,
        "params": int(backbone.count_params()),
        "examples_per_step": args.batch_size,
        "loss_tokens_per_step": args.batch_size * statistics.mean(min(n, seq_len) - 1 for n in lengths),
        "training_examples_cut_at_T": truncated,
        "outputs_not_starting_with_prompt": not_prefixed,
        # The same model decoded by a plain greedy loop over full forward passes (no cache, no
        # `generate`), and the commonest first answer tokens: whether `generate` or the model is at fault.
        "plain_loop": score(loop_answers, splits["test"]),
        "first_answer_tokens": first_ids,
        "predictions": [
            {"prompt": p, "reference": r, "output": a} for (p, r), a in list(zip(splits["test"], answers))[:5]
        ],
    }


def plain_greedy(model, preprocessor, prompts, max_new_tokens):
    """Greedy answers by full forward passes: ({token: count} of the first answer token, answers)."""
    import collections

    import numpy as np

    x = preprocessor.generate_preprocess(prompts)
    ids, mask = np.array(x["token_ids"]), np.array(x["padding_mask"])
    lengths = mask.sum(axis=1)
    end = preprocessor.tokenizer.end_token_id
    rows = np.arange(len(prompts))
    answers, done = [[] for _ in prompts], np.zeros(len(prompts), bool)
    for _ in range(max_new_tokens):
        logits = np.asarray(model({"token_ids": ids, "padding_mask": mask}))
        nxt = logits[rows, np.minimum(lengths - 1, ids.shape[1] - 1)].argmax(-1)
        for r in rows:
            if not done[r]:
                done[r] = nxt[r] == end or lengths[r] >= ids.shape[1]
                if not done[r]:
                    answers[r].append(int(nxt[r]))
                    ids[r, lengths[r]], mask[r, lengths[r]] = nxt[r], True
                    lengths[r] += 1
        if done.all():
            break
    first = collections.Counter(
        preprocessor.tokenizer.id_to_token(int(a[0])) if a else "<|endoftext|>" for a in answers
    )
    texts = [np.asarray(preprocessor.tokenizer.detokenize(a)).item() if a else "" for a in answers]
    texts = [t.decode("utf-8") if isinstance(t, bytes) else str(t) for t in texts]
    return dict(first.most_common(5)), texts


def score(answers, examples):
    from lm_keras.training.scoring import exact_match, token_f1

    count = len(examples)
    return {
        "exact_match": sum(exact_match(a, r) for a, (_, r) in zip(answers, examples)) / count,
        "f1": sum(token_f1(a, r) for a, (_, r) in zip(answers, examples)) / count,
        "examples": count,
    }


def prepare_ours(task_dir, vocab, merges, folder):
    from lm_keras.data.prepare import prepare
    from lm_keras.tokenizers import ByteLevelBPETokenizer

    tokenizer = ByteLevelBPETokenizer.from_files(str(vocab), str(merges))
    tokenizer.save(str(folder / "tokenizer"))
    prepare(
        str(task_dir / "train.jsonl"),
        str(folder / "data"),
        tokenizer_from=str(folder / "tokenizer"),
        validation_data=str(task_dir / "validation.jsonl"),
        log=lambda line: None,
    )
    return tokenizer, folder / "data"


def run_ours(task_dir, data_dir, splits, tokenizer, model_dir, args, seed, **fields):
    from lm_keras import model_dir as md
    from lm_keras.data.examples import prompt_and_reference, read_examples
    from lm_keras.training.scoring import score_examples
    from lm_keras.training.trainer import train

    steps = args.steps
    config = train_config(args).replace(
        model="transformer",
        **SIZE,
        seq_len=args.seq_len,
        position="learned",
        use_bias=True,
        mlp="gelu_tanh",
        corpus=str(data_dir),
        eval_every=steps,
        log_every=max(steps // 5, 1),
        checkpoint_every=steps,
        sample_tokens=0,
        seed=seed,
        **fields,
    )
    started = time.monotonic()
    results = train(str(model_dir), config, log=lambda line: None)
    train_seconds = time.monotonic() - started
    trained = md.load_trained(str(model_dir))
    examples = [prompt_and_reference(r, f) for r, f in read_examples(task_dir / "test.jsonl")]
    longest = max(len(trained.tokenizer.encode(reference)) for _, reference in examples)
    started = time.monotonic()
    figures, predictions = score_examples(
        trained.model, trained.tokenizer, examples, batch_size=args.generate_batch, max_new_tokens=longest + 8
    )
    generate_seconds = time.monotonic() - started
    # What a window holds: an example is prompt + completion + end-of-text, packed or padded.
    lengths = [len(tokenizer.encode(p)) + len(tokenizer.encode(c)) + 1 for p, c in splits["train"]]
    completions = [len(tokenizer.encode(c)) + 1 for _, c in splits["train"]]
    packed = fields.get("packing", "packed") == "packed"
    per_window = args.seq_len / statistics.mean(lengths) if packed else 1.0
    loss_share = statistics.mean(lengths if fields.get("loss_on") == "all" else completions)
    return {
        **figures,
        "completion_loss": results["val_loss"],
        "tokens_per_sec": results["tokens_per_sec"],
        "train_seconds": train_seconds,
        "generate_seconds": generate_seconds,
        "params": int(trained.model.count_params()),
        "examples_per_step": args.batch_size * per_window,
        "loss_tokens_per_step": args.batch_size * per_window * loss_share,
        "predictions": [{k: p[k] for k in ("prompt", "reference", "output")} for p in predictions[:5]],
    }


def table(result):
    lines = [
        "| run | seed | exact match | F1 | tokens/s | params | examples/step | loss tokens/step | train s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["runs"]:
        lines.append(
            f"| {r['run']} | {r['seed']} | {100 * r['exact_match']:.1f}"
            + (f" (plain loop {100 * r['plain_loop']['exact_match']:.1f})" if "plain_loop" in r else "")
            + f" | {100 * r['f1']:.1f} | "
            f"{r['tokens_per_sec']:,.0f} | {r['params']:,} | {r['examples_per_step']:.1f} | "
            f"{r['loss_tokens_per_step']:.0f} | {r['train_seconds']:.0f} |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = common.arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--seq_len", type=int, default=64)
    parser.add_argument("--vocab_size", type=int, default=512)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--generate_batch", type=int, default=200)
    parser.add_argument("--runs", default=",".join(["keras_hub", *VARIANTS]))
    parser.add_argument(
        "--end_of_text_first",
        action="store_true",
        help="<|endoftext|> at id 0, where Hugging Face puts it (keras-hub's generate then stops at once)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the JSON's records of the runs not named in --runs"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.seeds = 20, 1
    from lm_keras import tasks

    scratch = pathlib.Path(common.scratch_dir("keras_hub_tasks_"))
    splits, info = tasks.make_splits(TASK)
    task_dir = scratch / "task"
    tasks.write_splits(task_dir, splits, info)
    vocab, merges = write_tokenizer(
        splits["train"], scratch / "hf_tokenizer", args.vocab_size, args.end_of_text_first
    )
    tokenizer, data_dir = prepare_ours(task_dir, vocab, merges, scratch / "ours")
    agreement = tokenizer_agreement(splits, vocab, merges, tokenizer)
    print(f"keras-hub's GPT2Tokenizer gives lm_keras's ids for {agreement}", flush=True)
    seeds = [1337 + i for i in range(args.seeds)]
    settings = {
        k: getattr(args, k) for k in ("steps", "batch_size", "learning_rate", "seq_len", "vocab_size")
    }
    settings.update(SIZE, task=TASK, warmup_steps=min(100, args.steps // 10), schedule="cosine")
    settings["end_of_text_id"] = tokenizer.eot_id
    runs = []
    out = pathlib.Path(args.out or (common.OUT_DIR / "quick" / "keras_hub_tasks.json" if args.quick else OUT))
    kept = []
    if args.keep and out.is_file():
        suffix = "_end_of_text_id_0" if args.end_of_text_first else ""
        kept = [
            r
            for r in json.loads(out.read_text())["runs"]
            if r["run"] not in [n + suffix for n in args.runs.split(",")]
        ]

    def emit():
        common.emit(
            "keras_hub_tasks",
            {"settings": settings, "tokenizer_agreement": agreement, "runs": runs + kept},
            out,
        )

    for seed in seeds:
        for name in args.runs.split(","):
            if name == "keras_hub":
                record = run_keras_hub(splits, vocab, merges, args, seed)
            else:
                record = run_ours(
                    task_dir,
                    data_dir,
                    splits,
                    tokenizer,
                    scratch / "runs" / f"{name}_{seed}",
                    args,
                    seed,
                    **VARIANTS[name],
                )
            record.update(run=name + ("_end_of_text_id_0" if args.end_of_text_first else ""), seed=seed)
            runs.append(record)
            print(
                f"{name:>20} seed {seed}: exact match {record['exact_match']:.3f} | F1 {record['f1']:.3f} | "
                f"{record['tokens_per_sec']:,.0f} tok/s | {record['params']:,} params | "
                f"{record['train_seconds']:.0f} s",
                flush=True,
            )
            emit()
    print(table({"runs": runs + kept}))


def tokenizer_agreement(splits, vocab, merges, ours):
    """'N of M texts' where keras-hub's tokenizer gives our ids, over every split's prompt + completion."""
    import keras_hub
    import numpy as np

    hub = keras_hub.models.GPT2Tokenizer(vocabulary=str(vocab), merges=str(merges))
    texts = [p + c for examples in splits.values() for p, c in examples]
    hub_ids = hub(texts)
    hub_ids = hub_ids.to_list() if hasattr(hub_ids, "to_list") else [np.asarray(x).tolist() for x in hub_ids]
    same = sum(list(a) == ours.encode(t).tolist() for a, t in zip(hub_ids, texts))
    return f"{same} of {len(texts)} texts"


if __name__ == "__main__":
    main()
