"""Reads the character classes of GPT-2's pre-tokenizer regex off Hugging Face `tokenizers`.

`python -m tests.tokenizers.character_classes` prints the `RANGES` text of
lm_keras/tokenizers/byte_level_classes.py (about a minute: every code point is probed).
"""

from tokenizers import pre_tokenizers

SURROGATES = range(0xD800, 0xE000)


def hugging_face_class(split, c):
    """ "L", "N", "S" or "O": the class that GPT-2's regex in `tokenizers` gives character `c`.

    After "a", only a letter joins the word (` ?\\p{L}+`); after "1", only a number; after
    "!", only another character that is neither whitespace, letter nor number.
    """
    if len(split("a" + c)) == 1:
        return "L"
    if len(split("1" + c)) == 1:
        return "N"
    if len(split("!" + c)) == 1:
        return "O"
    return "S"


def splitter():
    pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    return lambda text: pre_tokenizer.pre_tokenize_str(text)


def ranges():
    """[(first code point, class)] of each run of one class; surrogates join the run before them."""
    split, runs = splitter(), []
    for cp in range(0x110000):
        cls = runs[-1][1] if cp in SURROGATES else hugging_face_class(split, chr(cp))
        if not runs or runs[-1][1] != cls:
            runs.append((cp, cls))
    return runs


def ranges_text(runs, width=104):
    lines, line = [], ""
    for item in (f"{cp:x} {cls}" for cp, cls in runs):
        if line and len(line) + 1 + len(item) > width:
            lines.append(line)
            line = item
        else:
            line = f"{line} {item}" if line else item
    return "\n".join([*lines, line])


if __name__ == "__main__":
    print(ranges_text(ranges()))
