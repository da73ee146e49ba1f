"""Load `params.yaml` sections into typed dataclasses.

Unknown keys are an error (a typo in params.yaml must not be silently ignored), and every
stage reads its own section only, so DVC's per-section params tracking stays exact.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"params file not found: {path}")
    with open(path, encoding="utf-8") as handle:
        data = yaml.safe_load(handle) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: top level must be a mapping")
    return data


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def from_dict(cls: type[T], data: dict[str, Any] | None, where: str = "") -> T:
    """Build dataclass `cls` from a mapping, recursing into nested dataclass fields."""
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    field_names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - field_names)
    if unknown:
        raise ValueError(f"unknown key(s) in params section '{where or cls.__name__}': {', '.join(unknown)}")
    kwargs = {}
    for name, value in data.items():
        tp = hints[name]
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin in (typing.Union, types.UnionType):
            inner = [a for a in args if a is not type(None)]
            tp = inner[0] if len(inner) == 1 else tp
        if _is_dataclass_type(tp):
            if not isinstance(value, dict):
                raise ValueError(f"params '{where}.{name}' must be a mapping, got {value!r}")
            value = from_dict(tp, value, f"{where}.{name}")
        elif typing.get_origin(tp) is dict and _is_dataclass_type(typing.get_args(tp)[1]):
            if not isinstance(value, dict):
                raise ValueError(f"params '{where}.{name}' must be a mapping, got {value!r}")
            value = {key: from_dict(typing.get_args(tp)[1], item, f"{where}.{name}.{key}") for key, item in value.items()}
        elif typing.get_origin(tp) is list and _is_dataclass_type(typing.get_args(tp)[0]):
            if not isinstance(value, list):
                raise ValueError(f"params '{where}.{name}' must be a list, got {value!r}")
            value = [from_dict(typing.get_args(tp)[0], item, f"{where}.{name}[{i}]") for i, item in enumerate(value)]
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except ValueError as exc:  # a config's own check (__post_init__): say which section
        if where and str(exc).startswith(f"params '{where}"):
            raise
        raise ValueError(f"params '{where or cls.__name__}': {exc}") from None


def to_dict(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj)
