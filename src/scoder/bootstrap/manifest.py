"""The manifest (`synthesizer.json`) that train@K and `reference` write next to their
checkpoints, and what later stages check against it."""

from __future__ import annotations

import json
from pathlib import Path

from scoder.models.llm.base import LLMConfig


def read_synthesizer(folder: str | Path) -> dict:
    """The manifest with checkpoint folders made paths (base model, method, checkpoints)."""
    manifest = Path(folder) / "synthesizer.json"
    if not manifest.exists():
        raise FileNotFoundError(f"{manifest} not found: is {folder} the output of a train stage?")
    data = json.loads(manifest.read_text(encoding="utf-8"))
    data["checkpoints"] = [str(Path(folder) / c) for c in data["checkpoints"]]
    return data


def check_engine_model(engine: LLMConfig, synthesizer: dict, section: str) -> None:
    """An engine block that serves a synthesizer takes its model from the manifest."""
    if engine.model not in ("", synthesizer["base_model"]):
        raise ValueError(f"{section}.engine.model is {engine.model!r} but the synthesizer was trained from "
                         f"{synthesizer['base_model']!r}; leave it empty (the base model comes from train)")
