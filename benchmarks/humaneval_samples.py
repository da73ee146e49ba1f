"""Real model samples for the sandbox agreement benchmark: the base SmolLM2-135M-Instruct's greedy
answers on all 164 HumanEval+ tasks, through the evaluate stage's own prompt, decoding and
sanitizer (about 35 minutes on 2 cores). Written once to benchmarks/data/ and shipped, so the
agreement check (benchmarks/sandbox_agreement.py) compares verdicts on a fixed set.

Usage: python benchmarks/humaneval_samples.py [--limit N] [--out FILE]
"""

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "benchmarks" / "data" / "smollm2-135m-instruct-humanevalplus-greedy.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from scoder.core.params import from_dict, load_params
    from scoder.evaluation.benchmarks import EvaluateConfig, generate_solutions, read_problems
    from scoder.models.llm import load_llm

    config = from_dict(EvaluateConfig, load_params(ROOT / "params.yaml")["evaluate"])
    problems = read_problems(os.environ.get("HUMANEVAL_OVERRIDE_PATH")
                             or ROOT.parent / "shared" / "data" / "benchmarks" / "HumanEvalPlus-v0.1.10.jsonl.gz")
    problems = problems[: args.limit] if args.limit else problems
    llm = load_llm(replace(config.engine, model="smollm2", adapter=None))
    generated = generate_solutions(llm, problems, config)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"task_id": task, "solution": s["solution"], "finish_reason": s["finish_reason"]}
            for task, samples in generated.items() for s in samples]
    out.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    print(f"{len(rows)} samples -> {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
