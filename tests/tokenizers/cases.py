"""Inputs shared by the tokenizer tests."""

from hypothesis import strategies as st

U2581 = "\u2581"

# Snippets that break naive tokenizers; the random-text strategy mixes them with any
# Unicode scalar value (st.characters(codec="utf-8") leaves out lone surrogates only).
HARD_SNIPPETS = [
    U2581,
    U2581 * 2,
    " ",
    "   ",
    "\n",
    "\n\n",
    "\t",
    "\r\n",
    "\x00",
    "\ufeff",
    "\u0301",
    "\U0001f600",
    "\U0001f469\u200d\U0001f469\u200d\U0001f467",
    "\u4e2d\u6587",
    "\ufffd",
    "\U0010ffff",
    "<0xE2>",
    "<unk>",
    "\u2047",
    "the",
    " the",
]
unicode_text = st.lists(
    st.one_of(st.sampled_from(HARD_SNIPPETS), st.characters(codec="utf-8")), max_size=40
).map("".join)

# Strings Python encode and in-graph tokenize must agree on.
MIXED_BATCH = [
    "",
    "First Citizen:\nBefore we proceed any further, hear me speak.",
    "  leading spaces, trailing spaces  ",
    "tabs\tand\r\nwindows newlines\n\n\n",
    "emoji \U0001f600\U0001f469\u200d\U0001f469\u200d\U0001f467 and \u4e2d\u6587 and "
    "\u0928\u092e\u0938\u094d\u0924\u0947",
    U2581,
    f"a{U2581}b {U2581}{U2581} c{U2581}",
    "\x00\ufeff\u0301\ufffd\U0010ffff",
    "x" * 3000,  # longer than one chunk
]

# What GPT-2's pre-tokenizer regex turns on: runs of each kind of whitespace before and after
# words, numbers, apostrophes and the contractions ('s 't 're 've 'm 'll 'd), letters and
# numbers of every script, and no-break and ideographic spaces.
GPT2_SNIPPETS = [" ", "  ", "\t", "\n", "\r", "\x0b", "\x0c", "\u00a0", "\u3000", "\u2009", "\u0085", "'"]
GPT2_SNIPPETS += [
    "'s",
    "'t",
    "'re",
    "'ve",
    "'m",
    "'ll",
    "'d",
    "'S",
    "s",
    "d",
    "the",
    "1",
    "42",
    "!",
    "?!",
    "é",
]
GPT2_SNIPPETS += ["\u0661", "\u00b2", "\u2167", "\u4e2d", "\U0001f600", "\u0301", "_", "~", "w", "A", "0"]
gpt2_text = st.lists(
    st.one_of(st.sampled_from(GPT2_SNIPPETS), st.characters(codec="utf-8")), max_size=40
).map("".join)
