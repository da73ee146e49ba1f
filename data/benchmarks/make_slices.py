"""Regenerate the decontamination slices in this folder from the public benchmark files.

The pool stage decontaminates against every benchmark the evaluate stage scores, offline on
a fresh machine, so the text it needs (prompts, reference solutions, tests) is shipped here:
only those fields, gzipped JSON lines, one record per scored task. The sources are the files
described in ../shared/data/README.md (sha256 checked below, so a slice always comes from the
version its README names):

    python data/benchmarks/make_slices.py [--source ../shared/data/benchmarks] [--out data/benchmarks]

Standard library only; the output bytes depend only on the sources (gzip mtime 0, no name).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

SOURCES = {  # file -> sha256 (the versions data/benchmarks/README.md names)
    "HumanEval.jsonl.gz": "b796127e635a67f93fb35c04f4cb03cf06f38c8072ee7cee8833d7bee06979ef",
    "HumanEvalPlus-v0.1.10.jsonl.gz": "272720b90ac375502c8ed23cd791c2a93dfb22a911641a494da74a426c09f101",
    "MbppPlus-v0.2.1.jsonl.gz": "f6dec10761525e9be0ca7591ed7aaa8cbed125637276dff5dcc0e5ba89f75e18",
    "mbpp.jsonl": "ccf64ceae9c5403bf50a044cb6d505bfd2a2963ee58338ba268fd65beab92a9f",
    "sanitized-mbpp.json": "ca95deaa9a01ef0a6f439f88bcf0dd3db3563d22f22aad6cae04ebb9a8d8c8e9",
}
HUMANEVAL_SLICE = "humaneval-decontam.jsonl.gz"
MBPP_SLICE = "mbpp-decontam.jsonl.gz"


def default_source() -> Path:
    shared = os.environ.get("SCODER_SHARED_DATA")
    return (Path(shared) if shared else REPO.parent / "shared" / "data") / "benchmarks"


def _read(path: Path) -> list[dict]:
    expected = SOURCES[path.name]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != expected:
        raise SystemExit(f"{path}: sha256 {digest}, expected {expected} (another version than README.md names)")
    if path.suffix == ".json":
        return json.loads(path.read_text(encoding="utf-8"))
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _text(value: str) -> str:
    return value.replace("\r\n", "\n")  # original MBPP code has Windows line ends


def humaneval_records(source: Path) -> list[dict]:
    """HumanEval (prompt, canonical solution, tests) with HumanEval+'s canonical solution, whose
    body differs for every task; a prompt HumanEval+ changed is kept too."""
    base = _read(source / "HumanEval.jsonl.gz")
    plus = {p["task_id"]: p for p in _read(source / "HumanEvalPlus-v0.1.10.jsonl.gz")}
    if set(plus) != {t["task_id"] for t in base}:
        raise SystemExit("HumanEval and HumanEval+ have different task ids")
    return [{"task_id": t["task_id"],
             "prompt": t["prompt"],
             "plus_prompt": plus[t["task_id"]]["prompt"] if plus[t["task_id"]]["prompt"] != t["prompt"] else "",
             "canonical_solution": t["canonical_solution"],
             "plus_solution": plus[t["task_id"]]["canonical_solution"],
             "test": t["test"]} for t in base]


def mbpp_records(source: Path) -> list[dict]:
    """The MBPP+ tasks (what the evaluate stage scores, `Mbpp/N`): MBPP+'s prompt and canonical
    solution with the original MBPP text, code and tests of task N, and the sanitized MBPP code
    where it differs from the original."""
    plus = _read(source / "MbppPlus-v0.2.1.jsonl.gz")
    original = {str(t["task_id"]): t for t in _read(source / "mbpp.jsonl")}
    sanitized = {str(t["task_id"]): t for t in _read(source / "sanitized-mbpp.json")}
    records = []
    for task in plus:
        number = task["task_id"].split("/", 1)[1]
        if number not in original:
            raise SystemExit(f"MBPP+ task {task['task_id']} has no task {number} in mbpp.jsonl")
        base = original[number]
        code = _text(base["code"])
        clean = _text(sanitized[number]["code"]) if number in sanitized else ""
        records.append({"task_id": task["task_id"],
                        "prompt": task["prompt"],
                        "text": base["text"],
                        "code": code,
                        "sanitized_code": clean if clean.strip() != code.strip() else "",
                        "canonical_solution": task["canonical_solution"],
                        "test": "\n".join(base["test_list"])})
    return records


def write_slice(records: list[dict], path: Path) -> None:
    buffer = io.BytesIO()
    # mtime 0 and no file name in the header: the same sources give the same bytes
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, compresslevel=9, mtime=0) as handle:
        handle.write("".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records).encode("utf-8"))
    path.write_bytes(buffer.getvalue())


def make_slices(source: Path, out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, records in ((HUMANEVAL_SLICE, humaneval_records(source)), (MBPP_SLICE, mbpp_records(source))):
        write_slice(records, out / name)
        written[name] = out / name
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=default_source(), help="folder of the benchmark files")
    parser.add_argument("--out", type=Path, default=HERE, help="where the slices go (default: this folder)")
    args = parser.parse_args()
    for name, path in make_slices(args.source, args.out).items():
        print(f"{path}: {path.stat().st_size} bytes, sha256 {hashlib.sha256(path.read_bytes()).hexdigest()}")


if __name__ == "__main__":
    main()
