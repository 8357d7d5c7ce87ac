"""Extraction: the first proper name in a line of the corpus (of a person, a place, a people, a day)."""

from lm_keras.tasks import shakespeare

DESCRIPTION = (
    "extraction: prompt 'Name in: LINE' and a newline, completion the first proper name in that line "
    "of tiny Shakespeare (a capitalised word the corpus uses inside sentences and never in lower case)"
)
CORPUS = "tiny_shakespeare"


def examples(text, max_chars):
    names = shakespeare.proper_names(text)
    found = {}
    for _, lines in shakespeare.speeches(text):
        for line in lines:
            first = next((word for word in shakespeare.words(line) if word in names), None)
            prompt = f"Name in: {line}\n"
            if first and len(prompt) + len(first) <= max_chars:
                found[prompt] = first
    return list(found.items())
