"""Regenerate the recorded-teacher slice in this folder from evol-codealpaca (GPT-3.5 answers).

The default profile's teacher is `backend: dataset`: answers another project already paid a
strong model for, replayed offline. This script turns the Python records of
nickrosh/evol-teacher's `evol-codealpaca` sample (instruction + GPT-3.5 output, Apache-2.0;
the copy described in ../shared/data/README.md, sha256 checked below) into the
seed snippet -> [Problem Description] / [Solution] shape of the synthesis prompt:

- problem: the record's instruction; solution: its output (explanation and fenced code);
- seed: evol-codealpaca has no seed snippet, so one is reconstructed OSS-Instruct-style
  (Magicoder takes 1-15 consecutive lines of an open-source file): the code block of the
  instruction when it has one (the code the problem is about), else 3-15 consecutive lines
  of the answer's longest Python block, at an offset drawn from a seeded RNG. `seed_from`
  says which. The recorded answer was written from the instruction, not from this seed.

Records are kept when the output has a Python block that parses, the whole pair is short
enough for the tiny profile's 768-token training window, and no text shares a 10-gram of
words with a HumanEval(+) or MBPP(+) task (the pool stage's decontamination index).

    python data/teacher/make_slice.py [--source ../shared/data/instructions] [--out data/teacher]

Output bytes depend only on the source (gzip mtime 0, sorted keys).
"""

from __future__ import annotations

import argparse
import ast
import gzip
import hashlib
import io
import json
import os
import random
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

SOURCE = "evol-codealpaca-2k-1.json"
SOURCE_SHA256 = "ab6d73a0642dd4a3db108940bbc385cf01374b3b95680de006f7b9308148360b"
SLICE = "evol-codealpaca-python.jsonl.gz"
MAX_PAIR_CHARS = 1800  # instruction + output: with the prompt, fits 768 tokens of SmolLM2's tokenizer
MAX_SEED_LINES = 15
MIN_SEED_LINES = 3
RNG_SEED = 1234

FENCE = re.compile(r"```([\w+#.-]*)[^\n]*\n(.*?)```", re.S)


def default_source() -> Path:
    shared = os.environ.get("SCODER_SHARED_DATA")
    return (Path(shared) if shared else REPO.parent / "shared" / "data") / "instructions"


def python_blocks(text: str) -> list[str]:
    return [code for lang, code in FENCE.findall(text) if lang.lower() in ("python", "py", "python3")]


def parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def reconstruct_seed(instruction: str, answer_code: str, rng: random.Random) -> tuple[str, str]:
    """(seed, seed_from): the instruction's own code block, else a window of the answer's code."""
    given = [code for _, code in FENCE.findall(instruction) if code.strip()]
    if given:
        return max(given, key=len).strip("\n"), "instruction"
    lines = [line for line in answer_code.strip("\n").split("\n")]
    size = min(len(lines), rng.randint(MIN_SEED_LINES, MAX_SEED_LINES))
    start = rng.randint(0, len(lines) - size)
    return "\n".join(lines[start : start + size]).strip("\n"), "answer"


def decontamination_index():
    sys.path.insert(0, str(REPO / "src"))
    from scoder.bootstrap.pool.config import DecontamConfig
    from scoder.bootstrap.pool.decontaminate import benchmark_files, build_index

    config = DecontamConfig()
    return build_index(config.ngram, benchmark_files(config, ["humaneval", "mbpp"], environ={}))


def build(source_dir: Path) -> tuple[bytes, dict]:
    path = source_dir / SOURCE
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != SOURCE_SHA256:
        raise SystemExit(f"{path}: sha256 {digest} is not the version data/teacher/README.md names ({SOURCE_SHA256})")
    records = json.loads(data)
    index = decontamination_index()
    rng = random.Random(RNG_SEED)
    kept, counts = [], {"records": len(records), "no_python_block": 0, "code_does_not_parse": 0, "too_long": 0,
                        "contaminated": 0}
    for number, record in enumerate(records):
        instruction, output = record["instruction"].strip(), record["output"].strip()
        blocks = python_blocks(output)
        if not blocks:
            counts["no_python_block"] += 1
            continue
        code = max(blocks, key=len)
        if not parses(code):
            counts["code_does_not_parse"] += 1
            continue
        if len(instruction) + len(output) > MAX_PAIR_CHARS:
            counts["too_long"] += 1
            continue
        seed, seed_from = reconstruct_seed(instruction, code, rng)
        if index.matches("\n".join((seed, instruction, output))):
            counts["contaminated"] += 1
            continue
        kept.append({"id": f"evol-codealpaca-2k-1:{number}", "seed": seed, "seed_from": seed_from,
                     "problem": instruction, "solution": output, "teacher": "gpt-3.5-turbo",
                     "source": f"nickrosh/evol-teacher evol-codealpaca 2k-1, record {number}"})
    counts["kept"] = len(kept)
    counts["seed_from_instruction"] = sum(r["seed_from"] == "instruction" for r in kept)
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as handle:
        for record in kept:
            handle.write((json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8"))
    return buffer.getvalue(), counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=default_source())
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    blob, counts = build(args.source)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / SLICE).write_bytes(blob)
    print(json.dumps({**counts, "bytes": len(blob), "file": str(args.out / SLICE)}, indent=1))


if __name__ == "__main__":
    main()
