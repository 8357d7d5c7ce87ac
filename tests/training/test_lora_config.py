"""The LoRA and context settings as resolve_config reads them: TensorFlow-free, before a run starts."""

import json

import pytest

from lm_keras.config import ModelConfig, preset
from lm_keras.errors import UserError
from lm_keras.training.run_config import resolve_config


def _write_run(path, cfg):
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps({**cfg.to_dict(), "preset": "shakespeare_char_cpu"}))
    return path


def test_fine_tuning_keeps_the_context_and_trains_on_shorter_windows(tmp_path):
    source = _write_run(tmp_path / "gpt2", preset("shakespeare_char_cpu").replace(seq_len=1024))
    cfg, _ = resolve_config(
        tmp_path / "ft", "shakespeare_char_cpu", {"init_from": str(source), "seq_len": 256}
    )
    assert (cfg.model.seq_len, cfg.model.context, cfg.model.resolved_context) == (256, 1024, 1024)
    # Without --seq_len the source's window; a fine-tune of the fine-tune keeps the 1,024 positions.
    cfg, _ = resolve_config(tmp_path / "ft2", "shakespeare_char_cpu", {"init_from": str(source)})
    assert (cfg.model.seq_len, cfg.model.context) == (1024, 1024)
    tuned = _write_run(tmp_path / "tuned", cfg.replace(seq_len=256))  # context 1024, windows 256
    cfg, _ = resolve_config(
        tmp_path / "ft3", "shakespeare_char_cpu", {"init_from": str(tuned), "seq_len": 512}
    )
    assert (cfg.model.seq_len, cfg.model.context) == (512, 1024)
    with pytest.raises(
        UserError,
        match=r"^--seq_len must be at most the model's context; received seq_len=2048, "
        r"context=1024$",
    ):
        resolve_config(tmp_path / "ft4", "shakespeare_char_cpu", {"init_from": str(source), "seq_len": 2048})
    with pytest.raises(UserError, match=r"^--context=2048 differs from --init_from=.* \(context=1024\)"):
        resolve_config(tmp_path / "ft5", "shakespeare_char_cpu", {"init_from": str(source), "context": 2048})


def test_context_rules():
    assert ModelConfig(seq_len=64, context=256).resolved_context == 256
    assert ModelConfig(seq_len=64).resolved_context == 64
    with pytest.raises(
        UserError, match="^--context is a Transformer's; received context=128 for --model=lstm"
    ):
        ModelConfig(model="lstm", context=128)


def test_lora_settings_are_fixed_on_resume_and_need_a_transformer_base(tmp_path):
    source = _write_run(tmp_path / "base", preset("shakespeare_char_cpu"))
    cfg, _ = resolve_config(
        tmp_path / "lora",
        "shakespeare_char_cpu",
        {"init_from": str(source), "lora_rank": 8, "lora_alpha": 16.0},
    )
    assert (cfg.train.lora_rank, cfg.train.lora_alpha, cfg.train.lora_targets) == (8, 16.0, "attention")
    run = _write_run(tmp_path / "lora", cfg)
    assert resolve_config(run, "shakespeare_char_cpu", {"max_steps": 10})[0].train.max_steps == 10
    with pytest.raises(
        UserError, match=r"^--lora_targets=all differs from the run in .* \(lora_targets=attention\)"
    ):
        resolve_config(run, "shakespeare_char_cpu", {"lora_targets": "all"})
    # LoRA on a LoRA run would stack adapters; an LSTM has nothing to adapt.
    with pytest.raises(UserError, match=r"is a LoRA run: LoRA on it would stack adapters"):
        resolve_config(tmp_path / "again", "shakespeare_char_cpu", {"init_from": str(run), "lora_rank": 4})
    lstm = _write_run(tmp_path / "lstm", preset("lstm_char"))
    with pytest.raises(UserError, match=r"^--lora_rank=4 adapts a Transformer; --init_from=.* is a lstm"):
        resolve_config(tmp_path / "x", "shakespeare_char_cpu", {"init_from": str(lstm), "lora_rank": 4})
    # A full fine-tune of a LoRA run is allowed (it merges the adapters), and a new run's LoRA is off.
    cfg, _ = resolve_config(tmp_path / "full", "shakespeare_char_cpu", {"init_from": str(run)})
    assert cfg.train.lora_rank == 0 and cfg.train.init_from == str(run)
