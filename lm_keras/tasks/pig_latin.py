"""A translation-like mapping: phrases of the corpus into Pig Latin, word by word."""

import re

from lm_keras.tasks import shakespeare

DESCRIPTION = (
    "translation: prompt 'Pig Latin: PHRASE' and a newline (a phrase of tiny Shakespeare, two words "
    "or more), completion the phrase in Pig Latin: each word's letters before its first vowel move "
    "to its end, then 'ay' ('way' after a leading vowel), capitals and punctuation kept in place"
)
CORPUS = "tiny_shakespeare"


def examples(text, max_chars):
    found = {}
    for _, lines in shakespeare.speeches(text):
        for line in lines:
            for phrase in shakespeare.phrases(line):
                prompt, completion = f"Pig Latin: {phrase}\n", pig_latin(phrase)
                if len(shakespeare.words(phrase)) >= 2 and len(prompt) + len(completion) <= max_chars:
                    found[prompt] = completion
    return list(found.items())


def pig_latin(text):
    """ "Did you see?" -> "Idday ouyay eesay?" (a run of letters is a word; "y" after the first
    letter is a vowel; a word without a vowel takes "ay")."""
    return re.sub(r"[A-Za-z]+", lambda match: _word(match.group()), text)


def _word(word):
    lower = word.lower()
    if lower[0] in "aeiou":
        moved = lower + "way"
    else:
        vowel = re.search(r"[aeiouy]", lower[1:])
        cut = vowel.start() + 1 if vowel else len(lower)
        moved = lower[cut:] + lower[:cut] + "ay"
    if word.isupper() and len(word) > 1:
        return moved.upper()
    return moved.capitalize() if word[0].isupper() else moved
