"""Tiny Shakespeare as speeches: the pieces the Shakespeare tasks are made of.

The corpus is speeches separated by blank lines, each a "NAME:" header and its lines;
a few headers have no lines (their stage directions were cut) and are skipped.
"""

import re

_WORD = re.compile(r"[A-Za-z]+")
# A capitalised word after a lowercase letter or a comma: inside a sentence, where only
# a name keeps its capital.
_MID_SENTENCE_CAPITAL = re.compile(r"(?<=[a-z,] )[A-Z][a-z]+\b")
_PHRASE_END = re.compile(r"(?<=[,;:.!?])\s+")


def speeches(text):
    """[(speaker, [line, ...])] in the corpus's order."""
    found = []
    for block in text.split("\n\n"):
        header, *lines = block.strip("\n").split("\n")
        if header.endswith(":") and lines:
            found.append((header[:-1], lines))
    return found


def words(text):
    return _WORD.findall(text)


def proper_names(text):
    """The capitalised words (3 letters or more) seen inside a sentence and never in lower case:
    the corpus's names of people and places ("Romeo", "Rome"), found from the text alone."""
    spoken = [line for _, lines in speeches(text) for line in lines]
    lower = {word for line in spoken for word in words(line) if word.islower()}
    return {
        word
        for line in spoken
        for word in _MID_SENTENCE_CAPITAL.findall(line)
        if len(word) >= 3 and word.lower() not in lower
    }


def phrases(line):
    """A line cut after its punctuation: "Hail, noble Marcius!" -> ["Hail,", "noble Marcius!"]."""
    return _PHRASE_END.split(line)
