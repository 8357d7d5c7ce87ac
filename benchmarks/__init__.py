"""The maintained benchmarks, run from the repository root as `python -m benchmarks.NAME`.

Each writes benchmarks/out/NAME.json and gives its rows of RESULTS.md's current table
through its `rows(result)`; `python -m benchmarks.run_all` runs them all, in this order.
The finished studies are frozen in experiments/.
"""

BENCHMARKS = (
    "train_throughput",  # the training step's tokens/s and MFU, beside keras-hub's GPT2Backbone
    "train_process",  # the default preset trained as whole processes, beside keras-hub's fit
    "pipeline",  # the tf.data pipeline alone against the training step it feeds
    "datasets",  # corpora of any size: prepare, peak memory, start-up, the shard pipeline
    "generation",  # cached decoding, the export, keras-hub's generate
    "gpt2",  # GPT-2 124M's shape beside keras-hub, training, generating, exported
    "serve_load",  # lm_keras.serve under bad requests, and request batching
    "tasks",  # teaching tasks: fine-tuned from the pre-trained model against from scratch
)
