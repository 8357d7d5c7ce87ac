"""The command lines: thin absl programs that parse flags and call the library.

    python -m lm_keras.prepare    lm_keras.commands.prepare   tokenize a corpus once into a dataset of shards
    python -m lm_keras.train      lm_keras.commands.train     train (or resume, or fine-tune) a model
    python -m lm_keras.evaluate   lm_keras.commands.evaluate  score a trained model on a split
    python -m lm_keras.generate   lm_keras.commands.generate  sample text from a trained model
    python -m lm_keras.export     lm_keras.commands.export    write a SavedModel version for TF Serving
    python -m lm_keras.serve      lm_keras.commands.serve     serve an export over TF Serving's REST API
    python -m lm_keras.convert    lm_keras.commands.convert   a pre-trained GPT-2 into a model directory
    python -m lm_keras.demo       lm_keras.commands.demo      the README's first command

Each `python -m lm_keras.<command>` module only calls `lm_keras.commands.<command>.run`,
which also is the console script `lm-keras-<command>`. A command defines its flags when
it runs, not when it is imported, so any of them import together; it checks its flags
before TensorFlow loads (a bad flag is one line and exit code 2) and turns a
`UserError` found while running into one line and exit code 1 (`cli`).
"""
