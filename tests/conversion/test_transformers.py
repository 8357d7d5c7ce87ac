"""`transformers` (PyTorch, CPU) loads our Hugging Face export and computes our logits; optional and slow.

Needs `torch` and `transformers` (pip install torch transformers); skipped without them.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.slow
PROMPTS = ["First Citizen:\nBefore we proceed any further, hear me speak.", "x€y 'tis 42  \t!"]


@pytest.mark.parametrize("from_export", [False, True], ids=["source", "export"])
def test_transformers_logits_and_ids_equal_ours(sources, converted, tmp_path, from_export):
    from lm_keras.conversion import export_huggingface

    trained = converted["huggingface"]
    folder = export_huggingface(trained.model_dir, tmp_path / "hf") if from_export else sources["huggingface"]
    model = transformers.GPT2LMHeadModel.from_pretrained(str(folder)).eval()
    tokenizer = transformers.GPT2TokenizerFast.from_pretrained(str(folder))
    for prompt in PROMPTS:
        ids = trained.tokenizer.encode(prompt)
        assert tokenizer(prompt)["input_ids"] == ids.tolist()
        with torch.no_grad():
            theirs = model(torch.tensor(ids[None, :], dtype=torch.long)).logits.numpy()[0]
        ours = np.asarray(trained.model(ids[None, :]))[0]
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-4)
        assert np.abs(theirs).max() > 1.0
