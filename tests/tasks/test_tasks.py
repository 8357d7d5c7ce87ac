"""The task generators: counts, lengths, disjoint splits, seeds, and each task's answers."""

import functools
import re

import pytest

from lm_keras import tasks
from lm_keras.tasks import name, pig_latin

SMALL = {"train": 300, "validation": 50, "test": 50}


@functools.cache
def splits_of(task, seed=tasks.DEFAULT_SEED, max_chars=tasks.DEFAULT_MAX_CHARS, **counts):
    return tasks.make_splits(task, seed, counts or None, max_chars)


@pytest.mark.parametrize("task", list(tasks.TASKS))
def test_the_splits_hold_the_counts_asked_fit_max_chars_and_share_no_prompt(shakespeare, task):
    splits, info = splits_of(task)
    assert {split: len(examples) for split, examples in splits.items()} == tasks.DEFAULT_COUNTS
    for examples in splits.values():
        for prompt, completion in examples:
            assert isinstance(prompt, str) and isinstance(completion, str) and prompt and completion
            assert len(prompt) + len(completion) <= 60
    prompts = {split: {prompt for prompt, _ in examples} for split, examples in splits.items()}
    assert sum(map(len, prompts.values())) == sum(tasks.DEFAULT_COUNTS.values())  # none twice
    assert info["task"] == task and info["seed"] == 1337 and info["max_chars"] == 60
    assert info["examples"] == tasks.DEFAULT_COUNTS
    assert info["longest_chars"] == max(len(p) + len(c) for ex in splits.values() for p, c in ex)
    assert info["corpus_sha256"] == (shakespeare.sha256 if task != "addition" else None)


@pytest.mark.parametrize("task", list(tasks.TASKS))
def test_the_same_seed_gives_the_same_examples_and_another_seed_others(task):
    again = tasks.make_splits(task, tasks.DEFAULT_SEED, None, tasks.DEFAULT_MAX_CHARS)
    assert again == splits_of(task)
    other, _ = splits_of(task, seed=7)
    for split in tasks.SPLITS:
        assert other[split] != again[0][split]


def test_more_training_examples_leave_validation_and_test_as_they_were():
    more, _ = splits_of("addition", train=5000, validation=200, test=200)
    fewer, _ = splits_of("addition")
    assert more["test"] == fewer["test"] and more["validation"] == fewer["validation"]
    assert more["train"][:1600] == fewer["train"]  # and the first training examples too


def test_a_smaller_max_chars_is_kept_and_one_too_small_for_the_counts_is_refused():
    splits, _ = splits_of("speaker", max_chars=36, **SMALL)
    assert max(len(p) + len(c) for ex in splits.values() for p, c in ex) <= 36
    with pytest.raises(ValueError, match=r"--task=addition has 0 examples of at most --max_chars=8 "):
        tasks.make_splits("addition", max_chars=8)
    with pytest.raises(ValueError, match=r"unknown task 'sums': one of addition, speaker, name, pig_latin"):
        tasks.make_splits("sums")
    with pytest.raises(ValueError, match=r"has 10000 examples .* fewer than the 10001 asked for"):
        tasks.make_splits("addition", counts={"train": 9801, "validation": 100, "test": 100})


def test_addition_answers_are_the_sums_written_backwards_and_every_pair_is_in_one_split():
    splits, _ = splits_of("addition", train=9600, validation=200, test=200)
    pairs = []
    for examples in splits.values():
        for prompt, completion in examples:
            a, b = re.fullmatch(r"(\d\d)\+(\d\d)=", prompt).groups()
            assert len(completion) == 3 and int(completion[::-1]) == int(a) + int(b)
            pairs.append((int(a), int(b)))
    assert sorted(pairs) == [(a, b) for a in range(100) for b in range(100)]
    assert ("12+39=", "150") in [e for ex in splits.values() for e in ex]


def test_the_speaker_is_the_one_whose_header_the_line_is_said_under(shakespeare):
    text = shakespeare.text
    splits, _ = splits_of("speaker")
    for prompt, completion in splits["test"]:
        line = prompt.removeprefix("Who says: ").removesuffix("\n")
        speakers = set()
        for match in re.finditer(re.escape(f"\n{line}\n"), text):
            speech = text.rfind("\n\n", 0, match.start() + 1) + 2
            speakers.add(text[speech : text.index("\n", speech)])
        assert speakers == {f"{completion}:"}, prompt


def test_the_name_is_the_first_proper_name_of_its_line(shakespeare):
    found = dict(name.examples(shakespeare.text, 60))
    assert found["Name in: Hail, noble Marcius!\n"] == "Marcius"  # "Hail" opens a sentence
    assert found["Name in: To Rome of our success. You, Titus Lartius,\n"] == "Rome"
    lower = set(re.findall(r"\b[a-z]+\b", shakespeare.text))
    for prompt, completion in found.items():
        assert completion in re.findall(r"[A-Za-z]+", prompt) and completion.lower() not in lower


def test_pig_latin_moves_the_letters_before_the_first_vowel():
    assert pig_latin.pig_latin("Did you see?") == "Idday ouyay eesay?"
    assert pig_latin.pig_latin("ROMEO, an apple; rhythm") == "OMEORAY, anway appleway; ythmrhay"
    assert pig_latin.pig_latin("Psst--ne'er") == "Psstay--enay'erway"
    splits, _ = splits_of("pig_latin")
    for prompt, completion in splits["test"]:
        phrase = prompt.removeprefix("Pig Latin: ").removesuffix("\n")
        assert completion == pig_latin.pig_latin(phrase) and len(re.findall(r"[A-Za-z]+", phrase)) >= 2
