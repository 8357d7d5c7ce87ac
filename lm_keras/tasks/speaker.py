"""Question answering about the corpus: who says this line?

One line cannot tell its speaker; a model that has read the plays can (it saw the line
under its speaker's name), so pre-training on the corpus should matter most here.
"""

from lm_keras.tasks import shakespeare

DESCRIPTION = (
    "question answering: prompt 'Who says: LINE' and a newline, completion the speaker of that line "
    "in tiny Shakespeare (its NAME: header); lines more than one speaker says are left out"
)
CORPUS = "tiny_shakespeare"


def examples(text, max_chars):
    speakers = {}  # line -> the speakers who say it, in the corpus's order
    for speaker, lines in shakespeare.speeches(text):
        for line in lines:
            speakers.setdefault(line, set()).add(speaker)
    found = []
    for line, names in speakers.items():
        if len(names) == 1:
            prompt, completion = f"Who says: {line}\n", next(iter(names))
            if len(prompt) + len(completion) <= max_chars:
                found.append((prompt, completion))
    return found
