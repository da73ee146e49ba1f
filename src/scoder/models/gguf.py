"""GGUF weights converted once into a plain transformers folder.

transformers reads a GGUF file by parsing its metadata (the 49K-token vocabulary of SmolLM2
among it) in Python and de-quantizing every tensor, once for the config, once for the
tokenizer and once for the model: about 20 s on a 2-core machine, paid again by every stage
and every checkpoint that loads the model. The same weights written as fp32 safetensors load in
well under a second, so the first load converts the file and every later one reads the folder.

The folder holds exactly what loading the GGUF file gives (fp32 de-quantized tensors, the
config without its quantization entry, the tokenizer with its chat template, the generation
config), so outputs are the same either way (tests/models/test_gguf.py compares them).

Location: $SCODER_MODEL_CACHE, else $XDG_CACHE_HOME/scoder/models, else ~/.cache/scoder/models;
one folder per GGUF file content (sha256) and transformers version (the conversion is
transformers' own), shared by every clone on the machine. Concurrent first loads wait on a lock
and the folder appears whole (written beside it, then renamed).
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
    import transformers

    stat = gguf.stat()
    digest = _sha256(str(gguf), stat.st_size, stat.st_mtime_ns)
    return model_cache_dir() / f"{gguf.stem}-{digest[:16]}-transformers-{transformers.__version__}"


def convert(gguf: Path, folder: Path) -> None:
    """Write the plain fp32 model, tokenizer and generation config that transformers builds
    from `gguf` into `folder` (atomically: a sibling folder, then a rename)."""
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
    partial = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    plain.save_pretrained(partial, safe_serialization=True)
    tokenizer.save_pretrained(partial)
    stat = gguf.stat()
    (partial / COMPLETE).write_text(json.dumps({"source": str(gguf), "bytes": stat.st_size}, indent=2) + "\n")
    os.replace(partial, folder)


def loadable(resolved: ResolvedModel) -> tuple[str, dict]:
    """(path, from_pretrained keyword arguments) for a resolved model: a GGUF file's converted
    folder (converted on first use), anything else as it is."""
    if not resolved.gguf_file:
        return resolved.path, {}
    gguf = Path(resolved.path) / resolved.gguf_file
    folder = converted_folder(gguf)
    if (folder / COMPLETE).is_file():
        return str(folder), {}
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f"{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be converting the same file
        if not (folder / COMPLETE).is_file():
            log.info("converting %s to a plain fp32 transformers folder once: %s", gguf.name, folder)
            shutil.rmtree(folder, ignore_errors=True)  # a folder without its marker is unfinished
            convert(gguf, folder)
    return str(folder), {}
