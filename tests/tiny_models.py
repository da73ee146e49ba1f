"""Tiny trained models the multi-process and Ray tests share: six synthesis records with a
LoRA reference model (Adam state kept) for the gradient-feature stages, and a two-checkpoint
LoRA synthesizer for multi-checkpoint sampling. Both train in seconds on the shipped SmolLM2."""

from __future__ import annotations

import json
from pathlib import Path


def write_feature_records(root: Path) -> list[dict]:
    """records.jsonl under `root`: six unparsed synthesis records (raw answers)."""
    records = [{"id": f"r{i}", "snippet": f"def f{i}(x):\n    return x * {i}\n", "parse_ok": False,
                "raw": f"[Problem Description]\nMultiply by {i}.\n[Solution]\n```python\ndef f{i}(x):\n    return x * {i}\n```"}
               for i in range(6)]
    (root / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return records


def train_reference(root: Path, records: list[dict]) -> None:
    """root/reference: a reference model trained on the first two records, with its manifest."""
    from scoder.bootstrap.synthesizer import synthesis_examples
    from scoder.training.sft import TrainConfig, train_sft

    examples, _ = synthesis_examples(records, require_parse_ok=False)
    result = train_sft(examples[:2], TrainConfig(num_checkpoints=1, batch_size=2, max_length=256), root / "reference")
    (root / "reference" / "synthesizer.json").write_text(json.dumps({"base_model": "smollm2", "checkpoints": ["checkpoint-0"]}))
    assert result["checkpoints"]


def train_synthesizer(folder: Path) -> dict:
    """A LoRA synthesizer with two checkpoints trained on four parsed pairs; its manifest, read back."""
    from scoder.bootstrap.manifest import read_synthesizer
    from scoder.bootstrap.synthesizer import synthesis_examples
    from scoder.training.sft import TrainConfig, train_sft

    examples, _ = synthesis_examples(
        [{"id": str(i), "snippet": f"def f{i}(x):\n    return x * {i}", "parse_ok": True, "problem": f"Multiply by {i}.",
          "solution": f"```python\ndef f(x):\n    return x * {i}\n```"} for i in range(4)], require_parse_ok=True)
    result = train_sft(examples, TrainConfig(batch_size=2, epochs=1, num_checkpoints=2, max_length=384, learning_rate=1e-3), folder)
    (folder / "synthesizer.json").write_text(json.dumps(
        {"base_model": "smollm2", "checkpoints": [f"checkpoint-{c['checkpoint']}" for c in result["checkpoints"]]}))
    return read_synthesizer(folder)
