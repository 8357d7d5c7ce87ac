"""How often GPT-2 tokenizers give other ids than Hugging Face's `tokenizers` (GPT-2's reference).

A byte-level BPE of 1,024 tokens trained on tiny Shakespeare; random strings of GPT-2's hard
cases (whitespace runs, contractions, digits, other scripts); the ids of lm_keras's graph
tokenizer and of keras-hub's `GPT2Tokenizer`, eager (its Python path) and in a `tf.function`
(its TensorFlow path), each compared with Hugging Face's.

    .venv/bin/python -m experiments.gpt2_tokenizer_agreement
"""

import os
import random

from benchmarks import common

common.setup_environment()

SNIPPETS = [" ", "  ", "\t", "\n", "\r", "\x0b", "\u00a0", "\u3000", "\u2009", "'", "'s", "'t", "'re", "'ll"]
SNIPPETS += ["s", "the", " the", "1", "42", "!", "?!", "é", "\u0661", "\u4e2d", "\U0001f600", "\u0301", "ing"]


def main():
    parser = common.arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--strings", type=int, default=1500)
    args = parser.parse_args()

    import keras_hub
    import numpy as np
    import tensorflow as tf
    from tokenizers.implementations import ByteLevelBPETokenizer

    from lm_keras import tokenizers
    from lm_keras.data import load_corpus

    text, _ = load_corpus("tiny_shakespeare").split(0.1)
    ours = tokenizers.train("gpt2_bpe", text, vocab_size=1024)
    folder = common.scratch_dir(prefix="bench_bpe_")
    ours.save(folder)
    vocab, merges = os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt")
    reference = ByteLevelBPETokenizer(vocab, merges)
    hub = keras_hub.models.GPT2Tokenizer(vocabulary=vocab, merges=merges)
    hub_graph = tf.function(lambda x: hub(x))
    rng = random.Random(0)
    strings = [
        "".join(
            rng.choice(SNIPPETS) if rng.random() < 0.8 else chr(rng.randint(32, 0x2FFF)) for _ in range(12)
        )
        for _ in range(args.strings)
    ]
    expected = [reference.encode(s).ids for s in strings]
    graph = ours.in_graph()  # tf.function methods hold their module weakly: keep it
    got = {
        "lm_keras_graph": graph.tokenize(tf.constant(strings)).to_list(),
        "keras_hub_eager": [np.asarray(hub(s)).tolist() for s in strings],
        "keras_hub_graph": hub_graph(tf.constant(strings)).to_list(),
    }
    differ = {name: [s for s, a, b in zip(strings, ids, expected) if a != b] for name, ids in got.items()}
    for name, bad in differ.items():
        print(
            f"{name}: other ids than Hugging Face's for {len(bad)} of {len(strings)} strings"
            + (f", e.g. {bad[0]!r}" if bad else "")
        )
    common.emit(
        "gpt2_tokenizer_agreement",
        {
            "strings": len(strings),
            "differ": {k: len(v) for k, v in differ.items()},
            "examples": {k: v[:5] for k, v in differ.items()},
        },
        args.out,
    )


if __name__ == "__main__":
    main()
