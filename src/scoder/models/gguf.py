"""GGUF weights converted once into a plain transformers folder.

transformers reads a GGUF file by parsing its metadata (the 49K-token vocabulary of SmolLM2
among it) in Python and de-quantizing every tensor, once for the config, once for the
tokenizer and once for the model: 24.5 s on a 2-core machine, paid again by every stage
and every checkpoint that loads the model. The same weights written as fp32 safetensors load in
well under a second, so the first load converts the file and every later one reads the folder.

The folder holds exactly what loading the GGUF file gives (fp32 de-quantized tensors, the
config without its quantization entry, the tokenizer with its chat template, the generation
config), so outputs are the same either way (tests/models/test_gguf.py compares them).

Location: $SCODER_MODEL_CACHE, else $XDG_CACHE_HOME/scoder/models, else ~/.cache/scoder/models;
one folder per GGUF file content (sha256), transformers and gguf versions (they do the
de-quantizing) and version of this conversion, shared by the user's clones. Concurrent first
loads wait on a lock; the folder appears whole (written beside it, then renamed) and its marker
records the file sizes, which every use checks. Where the cache cannot be written, the GGUF file
is loaded directly, as before, with a warning.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

from scoder.models.registry import ResolvedModel

log = logging.getLogger(__name__)

COMPLETE = "scoder-converted.json"  # written last: a folder without it is not used
CONVERSION_VERSION = 1  # bump when convert() changes what it writes


def model_cache_dir() -> Path:
    if os.environ.get("SCODER_MODEL_CACHE"):
        return Path(os.environ["SCODER_MODEL_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "scoder" / "models"


@functools.lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def converted_folder(gguf: Path) -> Path:
    """Where the conversion of `gguf` lives (whether or not it exists yet)."""
    from importlib.metadata import version

    import transformers

    stat = gguf.stat()
    digest = _sha256(str(gguf), stat.st_size, stat.st_mtime_ns)
    return model_cache_dir() / (f"{gguf.stem}-{digest[:16]}-v{CONVERSION_VERSION}-transformers-{transformers.__version__}"
                                f"-gguf-{version('gguf')}")


def _complete(folder: Path) -> bool:
    """The folder was written whole: its marker exists and every file has the recorded size."""
    try:
        sizes = json.loads((folder / COMPLETE).read_text(encoding="utf-8"))["files"]
        return all((folder / name).stat().st_size == size for name, size in sizes.items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def plain_model(gguf: Path):
    """(model, tokenizer) that transformers builds from `gguf`, the model rebuilt as a plain fp32
    one (no quantization entry in its config), as training needs it."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    kwargs = {"gguf_file": gguf.name}
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), **kwargs)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), dtype=torch.float32, **kwargs)
    config = AutoConfig.from_pretrained(str(gguf.parent), **kwargs)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict())
    plain.generation_config = loaded.generation_config
    return plain, tokenizer


def convert(gguf: Path, folder: Path) -> None:
    """Write the plain fp32 model, tokenizer and generation config that transformers builds
    from `gguf` into `folder` (atomically: a sibling folder, then a rename)."""
    plain, tokenizer = plain_model(gguf)
    partial = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        plain.save_pretrained(partial, safe_serialization=True)
        tokenizer.save_pretrained(partial)
        files = {p.name: p.stat().st_size for p in sorted(partial.iterdir()) if p.is_file()}
        stat = gguf.stat()
        marker = {"source": str(gguf), "bytes": stat.st_size, "conversion": CONVERSION_VERSION, "files": files}
        (partial / COMPLETE).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        os.replace(partial, folder)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)  # a full disk leaves no 540 MB behind
        raise


def loadable(resolved: ResolvedModel) -> tuple[str, dict]:
    """(path, from_pretrained keyword arguments) for a resolved model: a GGUF file's converted
    folder (converted on first use), anything else as it is."""
    path, kwargs = readable(resolved)
    if not kwargs:  # not GGUF, or already converted
        return path, kwargs
    gguf = Path(resolved.path) / resolved.gguf_file
    folder = converted_folder(gguf)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        with open(folder.parent / f"{folder.name}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be converting the same file
            if not _complete(folder):
                for stale in folder.parent.glob(f"{folder.name}.partial-*"):  # left by a crash
                    shutil.rmtree(stale, ignore_errors=True)
                log.info("converting %s to a plain fp32 transformers folder once: %s", gguf.name, folder)
                shutil.rmtree(folder, ignore_errors=True)  # unfinished or damaged
                convert(gguf, folder)
    except OSError as exc:  # a read-only or full cache: read the GGUF file itself, slowly
        log.warning("cannot write the converted model to %s (%s); loading %s directly", folder.parent, exc, gguf.name)
        return resolved.path, {"gguf_file": resolved.gguf_file}
    return str(folder), {}


def readable(resolved: ResolvedModel) -> tuple[str, dict]:
    """As `loadable`, but never converts: the converted folder when it exists, else the GGUF
    file itself (for a tokenizer alone, not worth a 540 MB conversion)."""
    if resolved.gguf_file:
        folder = converted_folder(Path(resolved.path) / resolved.gguf_file)
        if _complete(folder):
            return str(folder), {}
        return resolved.path, {"gguf_file": resolved.gguf_file}
    return resolved.path, {}
