"""Tasks to teach a pre-trained model from examples, written as prompt-completion JSON Lines.

`python -m lm_keras.tasks --task=NAME --output_dir=DIR` writes DIR/train.jsonl,
validation.jsonl and test.jsonl, one `{"prompt": ..., "completion": ...}` object a line
(TRL's prompt-completion format), and DIR/task.json (the task, its description, seed,
counts and `max_chars`).

Each task makes its pool of examples: every example with len(prompt) + len(completion)
<= max_chars (so it fits a character model's context), no prompt twice. The seed shuffles
the pool, and the splits are cut from it test first, then validation, then train: no
prompt is in two splits, and asking for more training examples leaves the test and
validation splits (and the training examples asked for before) as they were. The same
flags give the same bytes, offline.

Pure Python, TensorFlow-free.
"""

import json
import pathlib
import random

from lm_keras.errors import UserError
from lm_keras.tasks import addition, name, pig_latin, speaker

# name -> module (DESCRIPTION, CORPUS, examples(text, max_chars)); one task per application
# of the article (question answering, extraction, translation) and the sanity task.
TASKS = {"addition": addition, "speaker": speaker, "name": name, "pig_latin": pig_latin}
SPLITS = ("train", "validation", "test")
# 2,000 in all: the smallest pool at the default max_chars, name's, holds 2,210.
DEFAULT_COUNTS = {"train": 1600, "validation": 200, "test": 200}
DEFAULT_SEED = 1337
DEFAULT_MAX_CHARS = 60  # the char preset's seq_len is 64
INFO_FILE = "task.json"
FILES = (*(f"{split}.jsonl" for split in SPLITS), INFO_FILE)


def make_splits(task, seed=DEFAULT_SEED, counts=None, max_chars=DEFAULT_MAX_CHARS):
    """Returns ({split: [(prompt, completion), ...]}, the task.json record).

    Raises ValueError for an unknown task or counts its pool cannot give, and UserError when
    its corpus cannot be read.
    """
    from lm_keras.data import load_corpus

    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}: one of {', '.join(TASKS)}")
    counts = dict(DEFAULT_COUNTS if counts is None else counts)
    if set(counts) != set(SPLITS) or min(counts.values()) < 1:
        raise ValueError(f"every split needs at least 1 example; received {counts}")
    module = TASKS[task]
    corpus = load_corpus(module.CORPUS) if module.CORPUS else None
    pool = module.examples(corpus.text if corpus else None, max_chars)
    asked = sum(counts.values())
    if len(pool) < asked:
        raise ValueError(
            f"--task={task} has {len(pool)} examples of at most --max_chars={max_chars} characters, "
            f"fewer than the {asked} asked for ({', '.join(f'{n} {s}' for s, n in counts.items())}): "
            "ask for fewer examples or raise --max_chars"
        )
    random.Random(seed).shuffle(pool)
    splits, start = {}, 0
    for split in reversed(SPLITS):
        splits[split] = pool[start : start + counts[split]]
        start += counts[split]
    info = {
        "task": task,
        "description": module.DESCRIPTION,
        "seed": seed,
        "max_chars": max_chars,
        "longest_chars": max(len(p) + len(c) for examples in splits.values() for p, c in examples),
        "examples": {split: counts[split] for split in SPLITS},
        "corpus": corpus.name if corpus else None,
        "corpus_sha256": corpus.sha256 if corpus else None,
        "format": 'JSON Lines: one {"prompt": ..., "completion": ...} object a line',
    }
    return {split: splits[split] for split in SPLITS}, info


def check_output_dir(output_dir, task, seed):
    """Raises UserError unless `output_dir` is new, empty, or an earlier output of this task and seed
    (which a new one may replace)."""
    path = pathlib.Path(output_dir)
    if not path.exists():
        return
    if not path.is_dir():
        raise UserError(f"--output_dir={path} is a file: pass a folder")
    names = {entry.name for entry in path.iterdir()}
    if not names:
        return
    try:
        info = json.loads((path / INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        info = None
    earlier = isinstance(info, dict) and (info.get("task"), info.get("seed")) == (task, seed)
    if not earlier or not names <= set(FILES):
        raise UserError(
            f"--output_dir={path} is not empty and is not an earlier output of --task={task} --seed={seed} "
            f"(which holds {', '.join(FILES)} alone): pass a new or empty folder"
        )


def write_splits(output_dir, splits, info):
    """Writes the splits and task.json into `output_dir` at once (a folder filled beside it, renamed)."""
    from lm_keras.files import replace_dir_atomic, write_json_atomic, write_text_atomic

    def fill(folder):
        for split, examples in splits.items():
            records = [{"prompt": prompt, "completion": completion} for prompt, completion in examples]
            text = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
            write_text_atomic(pathlib.Path(folder) / f"{split}.jsonl", text)
        write_json_atomic(pathlib.Path(folder) / INFO_FILE, info)

    replace_dir_atomic(fill, output_dir)
