"""Params profiles: an overlay (only the keys that differ, e.g. `configs/paper.yaml`) merged
onto `params.yaml`, and a dry-run check of a whole params mapping: every section parsed into
its stage's dataclass (an unknown key is an error), every model reference resolvable by name
(shipped alias, existing path, or a well-formed hub name `org/name`), every OpenAI-compatible
endpoint a URL with the key's variable NAME (never a key). Nothing is loaded or downloaded."""

from __future__ import annotations

import copy
import dataclasses
import importlib
import re
from pathlib import Path
from typing import Any

import yaml

from scoder.core.params import from_dict, load_params



def config_sections() -> dict[str, str]:
    """params section -> "module:Class" its stage parses it into, from the stage declarations."""
    from scoder.core.stage import sections, stages_dir

    return sections(stages_dir())


SPECIAL = ("seed", "synthesizers", "rounds")  # read by several stages, validated below
MODEL_FIELDS = ("model", "embed_model", "lm")
HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")


def merge(base: Any, overlay: Any) -> Any:
    """`overlay` onto `base`: mappings merge key by key, anything else is replaced."""
    if isinstance(base, dict) and isinstance(overlay, dict):
        out = copy.deepcopy(base)
        for key, value in overlay.items():
            out[key] = merge(base[key], value) if key in base else copy.deepcopy(value)
        return out
    return copy.deepcopy(overlay)


def load_profile(params_file: str | Path, overlay_file: str | Path | None) -> dict:
    params = load_params(params_file)
    if overlay_file:
        overlay = yaml.safe_load(Path(overlay_file).read_text(encoding="utf-8")) or {}
        if not isinstance(overlay, dict):
            raise ValueError(f"{overlay_file}: top level must be a mapping")
        unknown = sorted(set(overlay) - set(params))
        if unknown:
            raise ValueError(f"{overlay_file}: section(s) not in {params_file}: {', '.join(unknown)}")
        params = merge(params, overlay)
    return params


def _dataclass(path: str):
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


def check_model(reference: Any, where: str) -> str:
    from scoder.models.registry import resolve

    if not isinstance(reference, str) or not reference:
        raise ValueError(f"{where}: model reference must be a non-empty string, got {reference!r}")
    resolved = resolve(reference)  # shipped alias or existing path; raises for a missing local path
    if resolved.path == reference and not Path(reference).exists() and not HUB_NAME.match(reference):
        raise ValueError(f"{where}: '{reference}' is neither a shipped alias, an existing path nor a hub name org/name")
    return resolved.path


def _walk(obj: Any, where: str, problems: list[str], models: dict[str, str]) -> None:
    from scoder.core.prices import price_for
    from scoder.models.llm.base import LLMConfig

    if isinstance(obj, LLMConfig):
        try:
            price_for(obj)
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
        if obj.max_budget_usd is not None and obj.max_budget_usd < 0:
            problems.append(f"{where}.max_budget_usd: must be >= 0 (or null for no cap), got {obj.max_budget_usd}")
        if obj.backend in ("openai", "openai-batch"):
            if not re.match(r"^https?://[^\s/]+", obj.endpoint or ""):
                problems.append(f"{where}.endpoint: '{obj.endpoint}' is not an http(s) URL")
            if not ENV_NAME.match(obj.api_key_env or ""):
                problems.append(f"{where}.api_key_env: must name an environment variable (e.g. OPENAI_API_KEY), "
                                "never hold a key")
            if not obj.model:
                problems.append(f"{where}.model: the served model name is empty")
            else:
                models[f"{where}.model"] = f"{obj.model} @ {obj.endpoint}"
            return
        if obj.backend == "dataset":  # a recorded teacher: `model` names who wrote the answers
            source = obj.recorded.source
            if not source:
                problems.append(f"{where}.recorded.source: backend 'dataset' needs a recorded file or hf:<dataset>")
            elif not source.startswith("hf:") and not Path(source).exists():
                problems.append(f"{where}.recorded.source: '{source}' does not exist")
            models[f"{where}.model"] = f"{obj.model} (recorded: {source})"
            return
        if obj.backend not in ("transformers", "vllm"):
            problems.append(f"{where}.backend: unknown backend '{obj.backend}'")
    if not dataclasses.is_dataclass(obj):
        if isinstance(obj, dict):
            for key, value in obj.items():
                _walk(value, f"{where}.{key}", problems, models)
        elif isinstance(obj, list):
            for index, value in enumerate(obj):
                _walk(value, f"{where}[{index}]", problems, models)
        return
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        name = f"{where}.{f.name}"
        # an empty model in an engine block means "the stage supplies it" (sample, synthesize, evaluate)
        if f.name in MODEL_FIELDS and isinstance(value, str) and value:
            try:
                models[name] = check_model(value, name)
            except (ValueError, FileNotFoundError) as exc:
                problems.append(str(exc))
        else:
            _walk(value, name, problems, models)


def check_params(params: dict) -> dict[str, str]:
    """Validate a whole params mapping; returns {where: resolved model} and raises ValueError
    listing every problem found."""
    from scoder.bootstrap.rounds import round_specs

    problems: list[str] = []
    models: dict[str, str] = {}
    sections = config_sections()
    unknown = sorted(set(params) - set(sections) - set(SPECIAL))
    if unknown:
        problems.append(f"unknown section(s): {', '.join(unknown)}")
    if not isinstance(params.get("seed", 0), int):
        problems.append(f"seed must be an integer, got {params['seed']!r}")
    for section, target in sections.items():
        if section not in params:
            problems.append(f"section '{section}' is missing")
            continue
        try:
            _walk(from_dict(_dataclass(target), params[section], section), section, problems, models)
        except (ValueError, TypeError) as exc:
            problems.append(f"{section}: {exc}")
    try:
        specs = round_specs(params.get("rounds") or {})
        synthesizers = params.get("synthesizers") or {}
        for key, spec in specs.items():
            if spec.previous not in synthesizers:
                problems.append(f"rounds.{key}.previous: no synthesizer '{spec.previous}'")
        for key, value in synthesizers.items():
            if not isinstance(value, dict) or set(value) != {"data", "init"}:
                problems.append(f"synthesizers.{key}: expected {{data: <file>, init: base | <synthesizer key>}}, "
                                f"got {value!r}")
            elif value["init"] != "base" and (value["init"] not in synthesizers or value["init"] == key):
                problems.append(f"synthesizers.{key}.init: '{value['init']}' is neither base nor another synthesizer")
    except (ValueError, TypeError) as exc:
        problems.append(str(exc))
    if problems:
        raise ValueError("params check failed:\n  - " + "\n  - ".join(problems))
    return models
