"""Regenerate the MBPP slice of the validity experiment from the original MBPP (974 tasks).

The experiment needs real instruction pairs that carry their own tests, so that a planted bug
can be shown to fail them. This keeps the MBPP tasks that are *not* in MBPP+ (the benchmark the
downstream models are measured on) and whose text, code and tests share no 10-gram of words with
a HumanEval(+) or MBPP(+) task (the pool stage's decontamination index):

    python experiments/validity/data/make_slice.py [--source ../shared/data/benchmarks] [--out experiments/validity/data]

MBPP (google-research/mbpp, mbpp.jsonl) is CC-BY-4.0. Output bytes depend only on the source
(gzip mtime 0, sorted keys).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
SOURCE = "mbpp.jsonl"
PLUS = "MbppPlus-v0.2.1.jsonl.gz"
SLICE = "mbpp-not-plus.jsonl.gz"


def default_source() -> Path:
    shared = os.environ.get("SCODER_SHARED_DATA")
    return (Path(shared) if shared else REPO.parent / "shared" / "data") / "benchmarks"


def decontamination_index():
    sys.path.insert(0, str(REPO / "src"))
    from scoder.bootstrap.pool.config import DecontamConfig
    from scoder.bootstrap.pool.decontaminate import benchmark_files, build_index

    config = DecontamConfig()
    return build_index(config.ngram, benchmark_files(config, ["humaneval", "mbpp"], environ={}))


def build(source_dir: Path) -> tuple[bytes, dict]:
    data = (source_dir / SOURCE).read_bytes()
    records = [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]
    with gzip.open(source_dir / PLUS, "rt", encoding="utf-8") as handle:
        plus = {int(json.loads(line)["task_id"].split("/")[1]) for line in handle if line.strip()}
    index = decontamination_index()
    kept, counts = [], {"records": len(records), "in_mbpp_plus": 0, "contaminated": 0, "no_tests": 0}
    for record in records:
        if record["task_id"] in plus:
            counts["in_mbpp_plus"] += 1
            continue
        if not record.get("test_list"):
            counts["no_tests"] += 1
            continue
        code = record["code"].replace("\r\n", "\n").replace("\t", "    ")
        if index.matches("\n".join([record["text"], code, *record["test_list"]])):
            counts["contaminated"] += 1
            continue
        kept.append({"id": f"mbpp:{record['task_id']}", "text": record["text"].strip(), "code": code.strip("\n"),
                     "test_setup_code": record.get("test_setup_code") or "", "test_list": record["test_list"],
                     "source": f"google-research/mbpp mbpp.jsonl, task {record['task_id']}"})
    counts["kept"] = len(kept)
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as handle:
        for record in kept:
            handle.write((json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8"))
    counts["source_sha256"] = hashlib.sha256(data).hexdigest()
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
