"""Task examples in JSON Lines: the records' checks (each message names file:line), their ids and loss
masks, and prepare of a .jsonl corpus (mask shards, example index, manifest, resume after a kill)."""

import json
import signal
import subprocess
import sys

import numpy as np
import pytest

from lm_keras import chat_template, tokenizers
from lm_keras.data import check_example_lengths
from lm_keras.data.examples import (
    check_record,
    encode_file,
    encode_record,
    prompt_and_reference,
    read_examples,
    read_records,
)
from lm_keras.data.prepare import prepare
from lm_keras.errors import UserError
from tests.data.test_prepare import run_prepare, tree_bytes
from tests.training.helpers import REPO


def write_jsonl(path, records):
    """Writes records (dicts, or str lines written as they are) one per line; returns the path as str."""
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return str(path)


def pc(prompt, completion):
    return {"prompt": prompt, "completion": completion}


def quiet(line):
    pass


# ------------------------------------------------------------------------- ids and masks


def test_each_format_gives_its_ids_and_loss_mask():
    tok = tokenizers.train("char", "abc")  # a=1 b=2 c=3, end-of-text 4
    assert tok.eot_id == 4
    ids, mask = encode_record(tok, {"text": "abca"}, "text")
    assert ids.tolist() == [1, 2, 3, 1, 4] and mask.tolist() == [1, 1, 1, 1, 1]
    assert ids.dtype == np.int32 and mask.dtype == np.uint8
    ids, mask = encode_record(tok, pc("ab", "ca"), "prompt_completion")
    assert ids.tolist() == [1, 2, 3, 1, 4] and mask.tolist() == [0, 0, 1, 1, 1]
    # Messages: the chat template's ids, 1 on the assistant's content and its end-of-text id.
    tok = tokenizers.train("char", "abc" + "".join(chat_template.HEADERS.values()))
    eot = tok.eot_id
    messages = [{"role": "user", "content": "ab"}, {"role": "assistant", "content": "c"}]
    ids, mask = encode_record(tok, {"messages": messages}, "messages")
    user, assistant = tok.encode("<|user|>\n").tolist(), tok.encode("<|assistant|>\n").tolist()
    a, b, c = tok.encode("abc").tolist()
    assert ids.tolist() == user + [a, b, eot] + assistant + [c, eot]
    assert mask.tolist() == [0] * len(user) + [0, 0, 0] + [0] * len(assistant) + [1, 1]


@pytest.mark.parametrize(
    "lines, message",
    [
        (
            ['{"text": "a"}', '{"text": "b"'],
            r"^f\.jsonl:2: malformed JSON \(.* at column 13\): write one JSON",
        ),
        (["[1, 2]"], r"^f\.jsonl:1: the record is a JSON array, not an object: write each line as"),
        (['{"prompt": "a"}'], r"^f\.jsonl:1: the field 'completion' is missing: every prompt_completion"),
        (
            ['{"prompt": "a", "completion": ""}'],
            r"^f\.jsonl:1: the field 'completion' is empty: give it text",
        ),
        (['{"text": 3}'], r"^f\.jsonl:1: the field 'text' is a JSON number, not a string"),
        (['{"question": "a"}'], r"^f\.jsonl:1: the record has none of the fields .* \(it has question\)"),
        (['{"text": "a", "prompt": "b"}'], r"^f\.jsonl:1: the record has the fields of two formats"),
        (
            ['{"messages": [{"role": "bot", "content": "hi"}]}'],
            r"^f\.jsonl:1: messages\[0\] has the unknown role 'bot'; the chat template knows system, user, "
            "assistant",
        ),
        (
            ['{"messages": [{"role": "user", "content": "hi"}]}'],
            r"^f\.jsonl:1: the messages hold no assistant message, so nothing in them is learned",
        ),
        (
            ['{"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "a"}]}'],
            r"^f\.jsonl:1: messages\[0\] \(user\) has an empty content",
        ),
        (
            ['{"text": "a"}', "", '{"prompt": "a", "completion": "b"}'],
            r"^f\.jsonl:3: a prompt_completion record among text records \(set by f\.jsonl:1\): give one "
            "format per file",
        ),
    ],
)
def test_bad_records_are_named_by_file_and_line(tmp_path, lines, message):
    path = tmp_path / "f.jsonl"
    write_jsonl(path, lines)
    with pytest.raises(UserError, match=message) as error:
        fmt, set_by = None, None
        for record in read_records(path, "f.jsonl"):
            fmt = check_record(record, fmt, set_by)
            set_by = set_by or record.where
    assert "\n" not in str(error.value)
    # prepare refuses the file with the same line, before writing anything but its work folder.
    with pytest.raises(UserError, match=message.replace("f\\.jsonl", "f\\.jsonl")):
        prepare(str(path), tmp_path / "ds", log=quiet)
    assert not (tmp_path / "ds" / "manifest.json").exists()


def test_a_line_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "f.jsonl"
    path.write_bytes(b'{"text": "a"}\n{"text": "\xff"}\n')
    with pytest.raises(UserError, match=r"^f\.jsonl:2: not UTF-8 \(byte 10 of the line is 0xff\)"):
        prepare(str(path), tmp_path / "ds", log=quiet)


def test_a_validation_file_of_another_format_is_refused(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", [pc("ab", "c")] * 3)
    val = write_jsonl(tmp_path / "val.jsonl", [{"text": "ab"}])
    with pytest.raises(
        UserError, match=r"^val\.jsonl:1: a text record among prompt_completion records \(set by "
    ):
        prepare(train, tmp_path / "ds", validation_data=val, log=quiet)


def test_too_few_examples_to_split_is_refused(tmp_path):
    train = write_jsonl(tmp_path / "t.jsonl", [pc("ab", "c")])
    with pytest.raises(
        UserError, match=r"^t\.jsonl: too few examples \(1\) to split at --val_fraction=0.1: give"
    ):
        prepare(train, tmp_path / "ds", log=quiet)


# ----------------------------------------------------------------------------- prepare

RECORDS = [pc("ab" * (i % 4 + 1), "c" * (i % 3 + 1) + "a") for i in range(10)]


def test_prepared_examples_on_disk(tmp_path):
    corpus = write_jsonl(tmp_path / "tasks.jsonl", RECORDS[:4] + [""] + RECORDS[4:])  # a blank line 5
    dataset = prepare(corpus, tmp_path / "ds", val_fraction=0.2, tokens_per_shard=7, log=quiet)
    tok = dataset.tokenizer()
    assert tok.kind == "char" and tok.eot_id == 4 and tok.encode("abc").tolist() == [1, 2, 3]
    encoded = [encode_record(tok, r, "prompt_completion") for r in RECORDS]
    lines = [1, 2, 3, 4, 6, 7, 8, 9, 10, 11]
    for split, chosen in ((dataset.train, range(8)), (dataset.val, range(8, 10))):
        ids = np.concatenate([encoded[i][0] for i in chosen])
        mask = np.concatenate([encoded[i][1] for i in chosen])
        np.testing.assert_array_equal(split.read(0, 10**6), ids)
        np.testing.assert_array_equal(split.read_mask(0, 10**6), mask)
        lengths = [len(encoded[i][0]) for i in chosen]
        np.testing.assert_array_equal(split.example_starts(), np.cumsum([0] + lengths[:-1]))
        assert split.examples == len(chosen) and split.eot_id == 4
    shards = sorted(p.name for p in (tmp_path / "ds" / "shards").iterdir())
    assert shards[:3] == ["train-000000.bin", "train-000000.mask", "train-000001.bin"]
    assert "train-examples.idx" in shards and "val-examples.idx" in shards
    # A mask shard: the shard header with item size 1, then one byte per id.
    raw = (tmp_path / "ds" / "shards" / "train-000000.mask").read_bytes()
    assert raw[:16] == b"LMKT" + (1).to_bytes(2, "little") + (1).to_bytes(2, "little") + (7).to_bytes(
        8, "little"
    )
    lengths = [len(e[0]) for e in encoded]
    longest = int(np.argmax(lengths))
    manifest = dataset.manifest
    assert manifest["version"] == 2
    assert manifest["examples"] == {
        "format": "prompt_completion",
        "eot_id": 4,
        "splits": {
            "train": {
                "examples": 8,
                "characters": sum(len(r["prompt"] + r["completion"]) for r in RECORDS[:8]),
                "loss_tokens": sum(int(e[1].sum()) for e in encoded[:8]),
                "longest": {"tokens": max(lengths[:8]), "at": f"tasks.jsonl:{lines[longest]}"},
            },
            "val": {
                "examples": 2,
                "characters": sum(len(r["prompt"] + r["completion"]) for r in RECORDS[8:]),
                "loss_tokens": sum(int(e[1].sum()) for e in encoded[8:]),
                "longest": {
                    "tokens": max(lengths[8:]),
                    "at": f"tasks.jsonl:{lines[8 + np.argmax(lengths[8:])]}",
                },
            },
        },
        "longest": {"tokens": max(lengths), "at": f"tasks.jsonl:{lines[longest]}"},
    }
    assert manifest["validation"]["first_example"] == 8 and manifest["validation"]["fraction"] == 0.2
    assert manifest["splits"]["train"]["tokens"] == sum(lengths[:8])
    # The trainer's check: the longest example against the window.
    check_example_lengths(dataset, max(lengths) - 1)
    with pytest.raises(
        UserError,
        match=rf"^tasks\.jsonl:{lines[longest]}: example of {max(lengths)} tokens does not fit "
        rf"--seq_len={max(lengths) - 2} \(\+1 target\); shorten it or raise --seq_len$",
    ):
        check_example_lengths(dataset, max(lengths) - 2)
    # The same input, the same bytes; a rerun of the finished dataset checks it and changes nothing.
    again = prepare(corpus, tmp_path / "again", val_fraction=0.2, tokens_per_shard=7, log=quiet)
    assert tree_bytes(again.path) == tree_bytes(dataset.path)
    assert (
        prepare(corpus, tmp_path / "ds", val_fraction=0.2, tokens_per_shard=7, log=quiet).manifest == manifest
    )


def test_validation_data_is_the_validation_split(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", [{"text": "abc"}, {"text": "ab"}])
    val = write_jsonl(tmp_path / "val.jsonl", [{"text": "ba"}, "", {"text": "cab"}])
    dataset = prepare(train, tmp_path / "ds", validation_data=val, log=quiet)
    assert dataset.train.read(0, 100).tolist() == [1, 2, 3, 4, 1, 2, 4]
    assert dataset.val.read(0, 100).tolist() == [2, 1, 4, 3, 1, 2, 4]
    assert dataset.val.read_mask(0, 100).tolist() == [1] * 7  # text: every token scored
    assert dataset.val.example_starts().tolist() == [0, 3]
    examples = dataset.manifest["examples"]
    assert examples["splits"]["val"]["longest"] == {"tokens": 4, "at": "val.jsonl:3"}
    assert dataset.manifest["validation"] == {"file": val, "rule": "the examples of --validation_data"}
    assert dataset.manifest["settings"]["validation_data"] == val
    assert [p["name"] for p in dataset.manifest["corpus"]["parts"]] == ["train.jsonl", "val.jsonl"]
    # The validation file is part of the corpus: a change to it is seen.
    write_jsonl(tmp_path / "val.jsonl", [{"text": "ba"}])
    with pytest.raises(UserError, match=r"the corpus .* changed since .* \(val\.jsonl: sha256"):
        prepare(train, tmp_path / "ds", validation_data=val, log=quiet)


def test_messages_train_a_char_vocabulary_with_the_template(tmp_path):
    conversation = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
    corpus = write_jsonl(tmp_path / "chat.jsonl", [conversation] * 10)
    dataset = prepare(corpus, tmp_path / "ds", log=quiet)
    tok = dataset.tokenizer()
    for header in list(chat_template.HEADERS.values()) + ["hiyo"]:  # every header's characters are known
        assert tok.decode(tok.encode(header)) == header
    ids, mask = chat_template.encode_messages(tok, conversation["messages"])
    np.testing.assert_array_equal(dataset.train.read(0, len(ids)), ids)
    np.testing.assert_array_equal(dataset.train.read_mask(0, len(ids)), mask)
    assert dataset.manifest["examples"]["format"] == "messages"


def test_tokenizer_from_a_run_is_reused_with_an_end_of_text_id(tmp_path):
    tokenizers.train("char", "abcd").save(str(tmp_path / "tok"))
    corpus = write_jsonl(tmp_path / "t.jsonl", RECORDS)
    dataset = prepare(corpus, tmp_path / "ds", tokenizer_from=str(tmp_path / "tok"), log=quiet)
    tok = dataset.tokenizer()
    assert tok.encode("abcd").tolist() == [1, 2, 3, 4] and tok.eot_id == 5 == dataset.train.eot_id
    assert dataset.train.read(0, 5).tolist() == [1, 2, 3, 1, 5]  # "ab", then "ca" and the end of text


def test_characters_a_given_char_tokenizer_lacks_are_named_in_a_warning(tmp_path):
    tokenizers.train("char", "abc").save(str(tmp_path / "tok"))
    corpus = write_jsonl(
        tmp_path / "t.jsonl", [{"prompt": "ab+", "completion": "c9"}, {"prompt": "a", "completion": "b"}]
    )
    lines = []
    prepare(corpus, tmp_path / "ds", tokenizer_from=str(tmp_path / "tok"), val_fraction=0.5, log=lines.append)
    warnings = [line for line in lines if "warning" in line]
    assert warnings == [
        "prepare | warning: 2 characters of the examples are not in the given char tokenizer's vocabulary "
        "('+9'): they encode to its unknown id, so a model of that tokenizer can neither read nor write "
        "them; train from scratch on such data"
    ]


def _killed_at_state_write(corpus, out, k):
    """A prepare process that kills itself (SIGKILL) at its k-th state save (0: the save that says done),
    saving after every example."""
    probe = (
        "import os, signal\n"
        "import lm_keras.data.prepare as p\n"
        "import lm_keras.data.resume_state as r\n"
        "p.SAVE_SECONDS = 0\n"
        "write, saves = r.write_file, [0]\n"
        "def write_or_die(path, data):\n"
        "    if path.name == r.STATE:\n"
        "        saves[0] += 1\n"
        f'        if saves[0] == {k} or ({k} == 0 and b\'"split": "done"\' in data):\n'
        "            os.kill(os.getpid(), signal.SIGKILL)\n"
        "    write(path, data)\n"
        "r.write_file = write_or_die\n"
        f"p.prepare({corpus!r}, {str(out)!r}, tokens_per_shard=7, log=lambda line: None)\n"
    )
    return subprocess.run([sys.executable, "-c", probe], cwd=REPO, timeout=120).returncode


def test_killed_at_any_save_then_rerun_gives_the_same_bytes(tmp_path):
    corpus = write_jsonl(tmp_path / "tasks.jsonl", RECORDS * 3)
    reference = prepare(corpus, tmp_path / "reference", tokens_per_shard=7, log=quiet)
    out = tmp_path / "killed"
    # At the scan's save (nothing saved: the rerun starts over), after 2 examples, then 10 more (the
    # mask tail and the example index's appends beyond the last state are cut back), then at the end.
    for k in (1, 3, 10, 0):
        assert _killed_at_state_write(corpus, out, k) == -signal.SIGKILL
        assert not (out / "manifest.json").exists()
    result = run_prepare(f"--corpus={corpus}", "--tokens_per_shard=7", f"--output_dir={out}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert tree_bytes(out) == tree_bytes(reference.path)


def test_the_command_takes_jsonl_and_validation_data(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", RECORDS)
    val = write_jsonl(tmp_path / "val.jsonl", RECORDS[:2])
    result = run_prepare(f"--corpus={train}", f"--validation_data={val}", f"--output_dir={tmp_path / 'ds'}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "10 train / 2 val prompt_completion examples (longest" in result.stdout
    # Bad flags: one line, exit 2, before anything is read.
    for flags, message in (
        ([f"--corpus={train}", "--validation_data=val.txt"], "--validation_data must be a .jsonl file"),
        (["--corpus=a.txt", f"--validation_data={val}"], "--validation_data is the validation split of a"),
    ):
        result = run_prepare(*flags, f"--output_dir={tmp_path / 'other'}")
        assert result.returncode == 2 and message in result.stderr and len(result.stderr.splitlines()) == 1
    # A bad record: one line naming file:line, exit 1.
    bad = write_jsonl(tmp_path / "bad.jsonl", [pc("a", "b"), '{"prompt": "a"}'])
    result = run_prepare(f"--corpus={bad}", f"--output_dir={tmp_path / 'bad'}")
    assert result.returncode == 1 and result.stderr.startswith(
        "error: bad.jsonl:2: the field 'completion' is"
    )


def test_scoring_reads_each_prompt_and_its_reference(tmp_path):
    conversation = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    path = tmp_path / "chat.jsonl"
    write_jsonl(path, [{"messages": conversation + [{"role": "assistant", "content": "yo"}]}])
    [(record, fmt)] = list(read_examples(path, "chat.jsonl"))
    assert prompt_and_reference(record, fmt) == (conversation, "yo")
    write_jsonl(path, [pc("2+2=", "4"), "", pc("1+1=", "2")])
    pairs = [(r.line, prompt_and_reference(r, fmt)) for r, fmt in read_examples(path)]
    assert pairs == [(1, ("2+2=", "4")), (3, ("1+1=", "2"))]
    write_jsonl(path, [{"text": "abc"}])
    with pytest.raises(UserError, match=r"^t\.jsonl:1: a text record has no answer to score"):
        [prompt_and_reference(r, fmt) for r, fmt in read_examples(path, "t.jsonl")]
    path.write_text("\n")
    with pytest.raises(UserError, match=r"^e\.jsonl holds no examples"):
        list(read_examples(path, "e.jsonl"))


def test_a_small_file_encodes_in_memory_for_scoring(tmp_path):
    tok = tokenizers.train("char", "abc")
    path = tmp_path / "test.jsonl"
    write_jsonl(path, [pc("ab", "c"), "", pc("c", "aba")])
    examples = encode_file(path, tok, "test.jsonl")
    assert examples["ids"].tolist() == [1, 2, 3, 4, 3, 1, 2, 1, 4]
    assert examples["mask"].tolist() == [0, 0, 1, 1, 0, 1, 1, 1, 1]
    assert examples["starts"].tolist() == [0, 4] and examples["eot_id"] == 4
    assert examples["where"] == ["test.jsonl:1", "test.jsonl:3"] and examples["format"] == "prompt_completion"
    check_example_lengths(examples, 4)
    with pytest.raises(UserError, match=r"^test\.jsonl:3: example of 5 tokens does not fit --seq_len=3 "):
        check_example_lengths(examples, 3)
