"""TokenizerSample: the whole training split of a small corpus, a fixed sample of a large one."""

import numpy as np

from lm_keras.data import tokenizer_sample
from lm_keras.data.tokenizer_sample import TokenizerSample, splitmix64


def test_splitmix64_matches_the_reference_sequence():
    # The first outputs of Vigna's splitmix64 seeded with 0, whose state before step i is
    # i * golden (mod 2**64): the hash of x adds golden, then mixes.
    golden = 0x9E3779B97F4A7C15
    states = np.array([0, golden, 2 * golden % 2**64], dtype=np.uint64)
    assert [int(x) for x in splitmix64(states)] == [
        0xE220A8397B1DCDAF,
        0x6E789E6AA1B965F4,
        0x06C45D188009454F,
    ]


def _sample(text, block_chars, total_bytes):
    sample = TokenizerSample(total_bytes)
    for start in range(0, len(text), block_chars):
        sample.add(text[start : start + block_chars], start)
    return sample


def test_a_small_corpus_gives_its_training_split():
    text = "".join(f"line {i}\n" for i in range(100))
    sample = _sample(text, 37, len(text))
    assert sample.text(300) == (text[:300], {"characters": 300, "lines": None})


def test_a_large_corpus_gives_the_same_lines_however_its_blocks_fall(monkeypatch):
    monkeypatch.setattr(tokenizer_sample, "TOKENIZER_SAMPLE_BYTES", 20_000)
    lines = [f"line {i} " + "x" * (i % 50) + "\n" for i in range(5000)]
    text = "".join(lines)
    boundary = len("".join(lines[:4500]))
    one = _sample(text, 1000, len(text)).text(boundary)
    other = _sample(text, 777, len(text)).text(boundary)
    assert one == other
    kept, trained_on = one
    assert 15_000 < trained_on["characters"] < 25_000 and trained_on["characters"] == len(kept)
    assert set(kept.splitlines(keepends=True)) <= set(lines[:4500])  # whole training lines only
    assert trained_on["lines"] == len(kept.splitlines())
