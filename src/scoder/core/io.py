"""Atomic file writes, JSON Lines helpers and stable content ids.

Every stage writes through these helpers so a killed process never leaves a half-written
file behind that DVC (or a resuming stage) would trust: data goes to a temporary file in
the same directory and is renamed over the target only once it is complete.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import tempfile
import zlib
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np


def content_id(*parts: str, length: int = 16) -> str:
    """Stable id of a record: sha256 over its identifying text parts."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    return digest.hexdigest()[:length]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it over `path` on success."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty `<path>.partial` folder; on success it replaces `path` (a trained
    model is written next to its place and swapped in, so DVC never records half of one)."""
    import shutil

    target = Path(path)
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    yield partial
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def write_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> int:
    """Write records atomically; returns the number written."""
    count = 0
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record, ensure_ascii=False, sort_keys=True))
                handle.write("\n")
                count += 1
    return count


def write_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, array)


def _open_text(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read JSON Lines (optionally gzipped); a bad line raises naming file and line."""
    path = Path(path)
    records = []
    line_no = 0
    try:
        with _open_text(path) as handle:
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{line_no}: not valid JSON ({exc.msg})") from exc
                if not isinstance(record, dict):
                    raise ValueError(f"{path}:{line_no}: expected a JSON object, got {type(record).__name__}")
                records.append(record)
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 (line {line_no + 1}: {exc.reason} at byte {exc.start})") from exc
    except (EOFError, OSError, zlib.error) as exc:  # a cut or corrupt .gz
        raise ValueError(f"{path}: unreadable after line {line_no} ({type(exc).__name__}: {exc})") from exc
    return records


def read_records(path: str | os.PathLike) -> list[dict]:
    """Read a JSON array file or a JSON Lines file (plain or .gz) into a list of dicts."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"data file not found: {path}")
    try:
        with _open_text(path) as handle:
            head = handle.read(1)
            while head and head.isspace():
                head = handle.read(1)
        if head != "[":
            return read_jsonl(path)
        with _open_text(path) as handle:
            data = json.load(handle)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not a valid JSON array (line {exc.lineno}, column {exc.colno}: {exc.msg})") from exc
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    except (EOFError, OSError, zlib.error) as exc:  # a cut or corrupt .gz
        raise ValueError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from exc
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise ValueError(f"{path}: expected a JSON array of objects")
    return data


def load_records(source: str, split: str = "train") -> list[dict]:
    """A local JSON array / JSON Lines file (plain or .gz), or `hf:<dataset>` from the Hugging
    Face hub (real runs, e.g. hf:theblackcat102/evol-codealpaca-v1)."""
    if source.startswith("hf:"):
        from datasets import load_dataset

        return [dict(record) for record in load_dataset(source[3:], split=split)]
    return read_records(source)
