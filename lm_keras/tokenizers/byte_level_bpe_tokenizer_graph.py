"""GPT-2's byte-level BPE as stock TensorFlow ops: a class table, one regex, and a merge loop.

Why not keras-hub's `BytePairTokenizer` (0.32): its graph path splits words with RE2
patterns that approximate GPT-2's lookahead and ASCII-only `\\s`, and its eager path runs
Hugging Face `tokenizers` with Llama 3's split pattern instead of GPT-2's. On 1,500 random
strings of GPT-2's hard cases (whitespace runs, contractions, digits, other scripts) its
eager path gave ids other than GPT-2's (Hugging Face's) for 392 and its graph path for 49
(experiments/gpt2_tokenizer_agreement.py), so its two paths disagree with each other too.
It caches every word it has seen in a table that grows without bound in a server. This
module gives `tokenizers`' ids for all of them and keeps no state.
"""

import tensorflow as tf

from lm_keras.tokenizers import graph_ops
from lm_keras.tokenizers.byte_level_bpe_tokenizer import BYTE_CHARS
from lm_keras.tokenizers.byte_level_classes import parse_ranges

# Each character becomes one ASCII letter of its class, and GPT-2's regex runs on those
# letters with RE2 (tf.strings.regex_replace). Characters that the regex names keep
# their own letter (the contractions' "'" and s t r e v m l d).
_LITERALS = "'strevmld"
_CLASS_CODES = {"L": ord("A"), "N": ord("0"), "O": ord("!"), "S": ord("w")}
# GPT-2's `\s+(?!\S)` needs a lookahead, which RE2 lacks; so whitespace followed by a
# non-space character gets its own letter, "_" for a space (which ` ?` may take into
# the next word) and "~" for any other.
_SPACE_BEFORE_WORD = ord("_")
_OTHER_SPACE_BEFORE_WORD = ord("~")
# GPT-2's regex on class letters: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+|
# ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ ; each word is followed by "|", which no letter is.
_WORD = r"('s|'t|'re|'ve|'m|'ll|'d|_?[Astrevmld]+|_?0+|_?[!']+|w+|~)"
_WORD_END = "|"


def class_codes():
    """(first code point of each run, the ASCII code of its class letter), ascending."""
    starts, classes = parse_ranges()
    codes = [_CLASS_CODES[c] for c in classes]

    def code_of(cp):
        return codes[max(i for i, start in enumerate(starts) if start <= cp)]

    ascii_codes = [ord(chr(cp)) if chr(cp) in _LITERALS else code_of(cp) for cp in range(128)]
    rest = [(128, code_of(128))] + [(s, c) for s, c in zip(starts, codes) if s > 128]
    return list(range(128)) + [s for s, _ in rest], ascii_codes + [c for _, c in rest]


class ByteLevelBPETokenizerGraph(tf.Module):
    """`ByteLevelBPETokenizer` in the TF graph, giving the same ids as its `encode`.

    Uses only stock TensorFlow ops (no tensorflow_text), so a SavedModel holding it
    is servable by any TF Serving:

    1. words: each code point's class (letter, number, whitespace, other) from a
       table read off Hugging Face `tokenizers` (`byte_level_classes`), and GPT-2's
       regex run by RE2 on one letter per class;
    2. bytes: each word's UTF-8 bytes as the ids of their byte tokens;
    3. merges: a `tf.while_loop` over all words at once; each step merges, in every
       word, the pair of lowest rank: its leftmost occurrence, as `tokenizers` does,
       or all of them left to right where that gives the same result (no merge
       that uses the new token ranks before it), so few steps run.

    Args:
        vocab: dict token -> id (GPT-2's vocab.json), ids 0 .. n - 1.
        merges: list of (left, right) token pairs in rank order (GPT-2's merges.txt).
        eot_id: None, or the id of "<|endoftext|>": tokenize never gives it (no word
            is that token), and detokenize drops it.

    Call arguments:
        tokenize(strings): tf.string (B,).
        detokenize(ids): tf.RaggedTensor or dense tensor (B, N) of int32 or int64 ids.

    Returns:
        tokenize: tf.RaggedTensor int32 (B, None); invalid UTF-8 raises
            tf.errors.InvalidArgumentError.
        detokenize: tf.string (B,); bytes that spell no valid UTF-8 give U+FFFD,
            and an id outside [0, vocab_size) raises tf.errors.InvalidArgumentError.

    Example:

    >>> graph = tok.in_graph()
    >>> ids = graph.tokenize(tf.constant(["To be", " 🙂"]))
    >>> graph.detokenize(ids).numpy()[1].decode("utf-8")
    ' 🙂'
    """

    def __init__(self, vocab, merges, eot_id=None, name="byte_level_bpe_tokenizer"):
        super().__init__(name=name)
        self.vocab_size = len(vocab)
        self.eot_id = eot_id
        starts, codes = class_codes()
        self._class_starts = tf.constant(starts, tf.int32)
        self._class_codes = tf.constant(codes, tf.int32)
        self._byte_ids = tf.constant([vocab[BYTE_CHARS[b]] for b in range(256)], tf.int32)
        char_bytes = {c: b for b, c in BYTE_CHARS.items()}
        id_to_token = sorted(vocab, key=vocab.get)
        token_bytes = [bytes(char_bytes[c] for c in t) for t in id_to_token]
        if eot_id is not None:
            token_bytes[eot_id] = b""  # detokenize drops the end-of-text id
        self._token_bytes = tf.constant(token_bytes, tf.string)

        # A pair listed twice keeps its last rank, as tokenizers' BPE does.
        rank_of = {(vocab[a], vocab[b]): rank for rank, (a, b) in enumerate(merges)}
        merged = [vocab[a + b] for a, b in merges]
        first_use = {}
        for rank, (a, b) in enumerate(merges):
            for part in (vocab[a], vocab[b]):
                first_use.setdefault(part, rank)
        # Merging every occurrence of the best pair at once is exact when no merge that
        # uses the new token ranks before this one.
        merge_all = [first_use.get(token, len(merges)) > rank for rank, token in enumerate(merged)]
        self._no_merge = len(merges)
        keys = [left * self.vocab_size + right for left, right in rank_of]
        self._ranks = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(keys, tf.int64), tf.constant(list(rank_of.values()), tf.int32)
            ),
            default_value=self._no_merge,
        )
        # Indexed by rank, one entry past the last for "no merge".
        self._merged = tf.constant(merged + [0], tf.int32)
        self._merge_all = tf.constant(merge_all + [False], tf.bool)
        # SavedModel keeps the traced functions only: trace detokenize for both id types.
        for ids_dtype in (tf.int32, tf.int64):
            self.detokenize.get_concrete_function(tf.RaggedTensorSpec([None, None], ids_dtype))
            self.detokenize.get_concrete_function(tf.TensorSpec([None, None], ids_dtype))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def tokenize(self, strings):
        codepoints = tf.strings.unicode_decode(strings, "UTF-8", errors="strict")  # (B, C), checks UTF-8
        cp = codepoints.flat_values  # (N,)
        code = tf.gather(self._class_codes, tf.searchsorted(self._class_starts, cp, side="right") - 1)  # (N,)
        is_space = tf.equal(code, _CLASS_CODES["S"])
        row = codepoints.value_rowids()  # (N,)
        ends_row = tf.concat([tf.not_equal(row[1:], row[:-1]), [True]], 0)  # (N,)
        before_word = is_space & ~(tf.concat([is_space[1:], [True]], 0) | ends_row)
        code = tf.where(
            before_word, tf.where(tf.equal(cp, ord(" ")), _SPACE_BEFORE_WORD, _OTHER_SPACE_BEFORE_WORD), code
        )
        letters = tf.strings.unicode_encode(codepoints.with_flat_values(code), "UTF-8")  # (B,) ASCII
        words = tf.strings.split(tf.strings.regex_replace(letters, _WORD, r"\1" + _WORD_END), sep=_WORD_END)
        word_chars = tf.strings.length(words.flat_values)  # (P,), an empty piece after each row's last word
        real = word_chars > 0
        word_chars = tf.boolean_mask(word_chars, real)  # (W,)
        num_words = tf.size(word_chars)
        words_per_row = tf.math.unsorted_segment_sum(
            tf.cast(real, tf.int32), words.value_rowids(), tf.size(strings)
        )  # (B,)

        utf8_bytes = 1 + tf.add_n(
            [tf.cast(cp >= limit, tf.int32) for limit in (0x80, 0x800, 0x10000)]
        )  # (N,)
        char_word = tf.repeat(tf.range(num_words), word_chars)  # (N,)
        word_bytes = tf.math.unsorted_segment_sum(utf8_bytes, char_word, num_words)  # (W,)
        # Latin-1 decoding turns each byte into the code point of its value.
        byte_values = tf.strings.unicode_decode(strings, "ISO-8859-1").flat_values  # (N bytes,)
        tokens = tf.gather(self._byte_ids, byte_values)
        tokens, token_word = self._merge(tokens, tf.repeat(tf.range(num_words), word_bytes), num_words)

        word_tokens = tf.math.unsorted_segment_sum(tf.ones_like(token_word), token_word, num_words)  # (W,)
        word_row = tf.repeat(tf.range(tf.size(strings)), words_per_row)  # (W,)
        row_tokens = tf.math.unsorted_segment_sum(word_tokens, word_row, tf.size(strings))  # (B,)
        return tf.RaggedTensor.from_row_lengths(tokens, tf.cast(row_tokens, tf.int64))  # (B, None)

    def _merge(self, tokens, word, num_words):
        """Applies the merges to every word: (tokens (n,), word of each token (n,)) -> the same, merged."""
        no_merge = self._no_merge
        # A last token in a word of its own: every token has a right neighbour, even with none.
        tokens = tf.concat([tokens, [0]], 0)
        word = tf.concat([word, [num_words]], 0)

        def step(tokens, word, _):
            left, right = tokens[:-1], tokens[1:]  # (n,) pairs
            pair_word = word[:-1]
            keys = tf.cast(left, tf.int64) * self.vocab_size + tf.cast(right, tf.int64)
            rank = tf.where(tf.equal(pair_word, word[1:]), self._ranks.lookup(keys), no_merge)  # (n,)
            best = tf.math.unsorted_segment_min(rank, pair_word, num_words + 1)  # (W + 1,)
            is_best = tf.equal(rank, tf.gather(best, pair_word)) & (rank < no_merge)  # (n,)
            # The leftmost best pair of each word.
            seen = tf.cumsum(tf.cast(is_best, tf.int32), exclusive=True)
            first = is_best & tf.equal(
                seen, tf.gather(tf.math.unsorted_segment_min(seen, pair_word, num_words + 1), pair_word)
            )
            # Every best pair, left to right: in a run of overlapping ones ("a a a" and the
            # pair "a a"), every other one from the run's start.
            position = tf.range(tf.size(rank))
            other = tf.cast(tf.where(~is_best)[:, 0], tf.int32)
            previous_other = tf.gather(tf.concat([[-1], other], 0), tf.searchsorted(other, position))
            every = is_best & tf.equal((position - previous_other - 1) % 2, 0)
            rank_or_none = tf.minimum(rank, no_merge)
            start = tf.where(tf.gather(self._merge_all, rank_or_none), every, first)  # (n,)
            merged = tf.where(start, tf.gather(self._merged, rank_or_none), left)
            tokens = tf.concat([merged, tokens[-1:]], 0)
            keep = ~tf.concat([[False], start], 0)  # the right token of a merged pair goes
            return tf.boolean_mask(tokens, keep), tf.boolean_mask(word, keep), tf.reduce_any(start)

        tokens, word, _ = tf.while_loop(
            lambda tokens, word, merged: merged,
            step,
            [tokens, word, tf.constant(True)],
            shape_invariants=[tf.TensorShape([None]), tf.TensorShape([None]), tf.TensorShape([])],
        )
        return tokens[:-1], word[:-1]

    @tf.function
    def detokenize(self, ids):
        ids = graph_ops.as_ragged_ids(ids, self.vocab_size)  # (B, None) int32
        text = tf.strings.reduce_join(
            ids.with_flat_values(tf.gather(self._token_bytes, ids.flat_values)), axis=1
        )
        return tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD)
