"""The command lines: thin absl programs that parse flags and call the library.

`COMMANDS` is their one list. For each name, `python -m lm_keras.<name>` (a one-line
entry module, or a package's `__main__`) and the console script `lm-keras-<name>` (setup.cfg) both call
`lm_keras.commands.<name>.run`; `python -m lm_keras` prints the list, and
tests/test_commands.py checks that the entry modules and console scripts match it.

A command defines its flags when it runs, not when it is imported, so any of them import
together; it checks its flags before TensorFlow loads (a bad flag is one line and exit
code 2) and turns a `UserError` found while running into one line and exit code 1 (`cli`).
"""

# name -> what it does, in one line (in the order a user meets them)
COMMANDS = {
    "prepare": "tokenize a corpus once into a dataset of shards",
    "train": "train (or resume, or fine-tune) a model",
    "evaluate": "score a trained model on its validation split (or every split)",
    "generate": "sample text from a trained model",
    "export": "write a SavedModel for TF Serving, or a Hugging Face GPT-2 folder",
    "serve": "serve an export over TF Serving's REST API",
    "convert": "turn a pre-trained GPT-2 into a model directory",
    "tasks": "write a task's prompt-completion examples (train, validation, test JSONL)",
    "demo": "train the default preset briefly, sample, export (the README's first command)",
}
