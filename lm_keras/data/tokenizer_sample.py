"""TokenizerSample: the text a trained tokenizer learns from, bounded and the same on every run."""

import numpy as np

# A trained tokenizer sees at most about this much of the training split: all of it when
# the corpus is smaller, else lines drawn by a hash of their index (the same for every run).
TOKENIZER_SAMPLE_BYTES = 32 << 20
# Sampled lines are cut to this many characters: under SentencePiece's max_sentence_length
# (100,000 bytes) whatever the script.
SAMPLE_LINE_CHARS = 4096


class TokenizerSample:
    """The lines of a corpus that a trained tokenizer learns from, gathered block by block.

    A corpus of at most `TOKENIZER_SAMPLE_BYTES` gives its whole training split. A larger
    one gives the lines whose index hashes below a threshold set for that many bytes,
    each cut to `SAMPLE_LINE_CHARS` characters; lines of the validation split are dropped
    once the boundary is known.

    Args:
        total_bytes: the corpus's size in bytes, or None where it cannot be told ahead.

    Example:
        sample = TokenizerSample(source.size())
        for block in source.blocks():
            sample.add(block.text, first_char)
        text, trained_on = sample.text(boundary)
    """

    def __init__(self, total_bytes):
        self.whole = total_bytes is not None and total_bytes <= TOKENIZER_SAMPLE_BYTES
        rate = 1.0 if not total_bytes else min(1.0, TOKENIZER_SAMPLE_BYTES / total_bytes)
        self.threshold = np.uint64(min(int(rate * 2**64), 2**64 - 1))
        self.texts, self.lines, self.line_index, self.carry, self.size = [], [], 0, "", 0

    def add(self, text, first_char):
        """Takes the next block's `text`, whose first character is the corpus's `first_char`-th."""
        if self.whole:
            self.texts.append(text)
            return
        if self.size > 2 * TOKENIZER_SAMPLE_BYTES:
            return  # a corpus whose size could not be told ahead: keep the sample bounded
        lines = text.split("\n")
        lines[0] = self.carry + lines[0]
        starts = first_char - len(self.carry) + np.concatenate([[0], np.cumsum([len(x) + 1 for x in lines])])
        keys = splitmix64(np.arange(self.line_index, self.line_index + len(lines) - 1, dtype=np.uint64))
        for i in np.flatnonzero(keys < self.threshold):
            line = lines[i][:SAMPLE_LINE_CHARS] + "\n"
            self.lines.append((int(starts[i]), line))
            self.size += len(line)
        self.line_index += len(lines) - 1
        self.carry = lines[-1][:SAMPLE_LINE_CHARS]

    def text(self, boundary):
        """(the sample's text, what it is: the manifest's "trained_on") once the boundary is known."""
        if self.whole:
            return "".join(self.texts)[:boundary], {"characters": boundary, "lines": None}
        kept = [line for start, line in self.lines if start < boundary]
        text = "".join(kept)
        return text, {"characters": len(text), "lines": len(kept)}


def splitmix64(x):
    """splitmix64 of each uint64: a fixed pseudo-random key per line index."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))
