import json

import pytest

from lm_keras.config import preset
from lm_keras.errors import UserError
from lm_keras.training.run_config import resolve_config


def _write_run(path, cfg, preset_name="shakespeare_char_cpu"):
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps({**cfg.to_dict(), "preset": preset_name}))


def test_new_run_is_preset_plus_flags(tmp_path):
    cfg, name = resolve_config(tmp_path / "run", "shakespeare_char_cpu", {"max_steps": 7, "hidden_dim": 64})
    assert name == "shakespeare_char_cpu"
    assert (cfg.train.max_steps, cfg.model.hidden_dim, cfg.model.num_layers) == (7, 64, 4)
    assert cfg.train.beta2 == 0.99 and cfg.train.warmup_steps == 100


def test_resume_keeps_stored_config_and_accepts_training_changes(tmp_path):
    run = tmp_path / "run"
    _write_run(run, preset("shakespeare_char_cpu").replace(hidden_dim=64))
    cfg, _ = resolve_config(run, "shakespeare_char_cpu", {"max_steps": 3000})
    assert (cfg.model.hidden_dim, cfg.train.max_steps) == (64, 3000)


@pytest.mark.parametrize(
    "flag, value, message",
    [
        (
            "hidden_dim",
            256,
            r"--hidden_dim=256 differs from the run in .* \(hidden_dim=64\): a run resumes with its own",
        ),
        (
            "corpus",
            "python_docs",
            r"--corpus=python_docs differs from the run in .* \(corpus=tiny_shakespeare\)",
        ),
    ],
)
def test_resume_refuses_a_different_model_or_data(tmp_path, flag, value, message):
    run = tmp_path / "run"
    _write_run(run, preset("shakespeare_char_cpu").replace(hidden_dim=64))
    with pytest.raises(UserError, match=message):
        resolve_config(run, "shakespeare_char_cpu", {flag: value})


def test_resume_refuses_another_preset(tmp_path):
    run = tmp_path / "run"
    _write_run(run, preset("shakespeare_char_cpu"))
    with pytest.raises(UserError, match="--preset=lstm_char differs from the run"):
        resolve_config(run, "lstm_char", {}, preset_given=True)


def test_init_from_inherits_architecture_and_tokenizer(tmp_path):
    source = tmp_path / "pretrained"
    _write_run(source, preset("shakespeare_bpe_cpu").replace(hidden_dim=64, num_heads=2, dropout=0.0))
    cfg, _ = resolve_config(
        tmp_path / "ft",
        "shakespeare_char_cpu",
        {"init_from": str(source), "corpus": "python_docs", "learning_rate": 3e-4, "dropout": 0.1},
    )
    assert (cfg.model.hidden_dim, cfg.model.num_heads, cfg.model.dropout) == (64, 2, 0.1)
    assert (cfg.data.tokenizer, cfg.data.vocab_size, cfg.data.corpus) == ("bpe", 1024, "python_docs")
    assert cfg.train.learning_rate == 3e-4


@pytest.mark.parametrize("flag, value", [("hidden_dim", 128), ("tokenizer", "char"), ("vocab_size", 512)])
def test_init_from_refuses_another_architecture_or_tokenizer(tmp_path, flag, value):
    source = tmp_path / "pretrained"
    _write_run(source, preset("shakespeare_bpe_cpu").replace(hidden_dim=64))
    with pytest.raises(UserError, match=rf"--{flag}={value} differs from --init_from=.*fine-tuning keeps"):
        resolve_config(tmp_path / "ft", "shakespeare_char_cpu", {"init_from": str(source), flag: value})


def test_init_from_without_a_run(tmp_path):
    with pytest.raises(UserError, match="holds no config.json"):
        resolve_config(tmp_path / "ft", "shakespeare_char_cpu", {"init_from": str(tmp_path / "nothing")})
