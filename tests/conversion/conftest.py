"""The small random GPT-2 checkpoints of both formats, and their conversions (each made once)."""

import pytest

from tests.conversion import checkpoints


@pytest.fixture(scope="session")
def sources(tmp_path_factory):
    """{"huggingface": folder, "keras_hub": folder} of small random GPT-2 checkpoints."""
    root = tmp_path_factory.mktemp("gpt2_sources")
    return {
        "huggingface": checkpoints.write_hf_checkpoint(root / "huggingface"),
        "keras_hub": checkpoints.write_keras_hub_preset(root / "keras_hub"),
    }


@pytest.fixture(scope="session")
def converted(sources, tmp_path_factory):
    """{format: the TrainedModel of its converted model directory}."""
    from lm_keras.conversion import convert

    root = tmp_path_factory.mktemp("gpt2_converted")
    return {name: convert(folder, root / name, log=lambda line: None) for name, folder in sources.items()}


@pytest.fixture(scope="session")
def keras_hub_lms(sources):
    """{format: keras-hub's GPT2CausalLM loaded from that source}."""
    import keras_hub

    return {name: keras_hub.models.GPT2CausalLM.from_preset(str(folder)) for name, folder in sources.items()}
