"""Shared plumbing of the thin stage scripts in `stages/`: arguments, logging, params."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from scoder.core.params import load_params


def quiet_threads() -> None:
    """Call before importing torch: on these 2-core VMs OpenMP's busy-wait costs more than it
    saves, so idle threads sleep instead of spinning."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def setup_logging() -> None:
    logging.basicConfig(
        level=os.environ.get("SCODER_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("httpx", "urllib3", "alembic", "mlflow", "sentence_transformers", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def stage_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    return parser


def load_section(params_file: str, section: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the whole params mapping, the stage's section); a missing section is an error."""
    params = load_params(params_file)
    if section not in params:
        raise KeyError(f"{params_file} has no '{section}' section")
    return params, params[section] or {}


def is_main_process() -> bool:
    """False in the non-main processes of `accelerate launch` / `torchrun` (RANK > 0)."""
    return int(os.environ.get("RANK", "0")) == 0


@contextlib.contextmanager
def main_process_dir(path: str | os.PathLike) -> Iterator[Path]:
    """The stage's output folder, written atomically by the main process; the other processes
    of a distributed launch get a scratch folder that is thrown away."""
    from scoder.core.io import atomic_dir

    if is_main_process():
        with atomic_dir(path) as partial:
            yield partial
    else:
        with tempfile.TemporaryDirectory(prefix=f"rank{os.environ.get('RANK')}-") as scratch:
            yield Path(scratch)
