"""`scoder` command line: small tools around the pipeline.

    scoder fit-weights EXPERIMENTS.jsonl --ridge-lambda 1.0 --out weights.json
        Eq. 2 of SCoder: ridge regression from K experiments, each a JSON line with
        "aspects" (mean aspect scores by name) and "outcome" (out-of-distribution score).
    scoder resolve-model NAME
        Where a model reference from params resolves to (shipped alias, folder or hub name).
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def fit_weights_command(args: argparse.Namespace) -> int:
    from .io import read_jsonl, write_json
    from .prompts import SCORING_ASPECTS
    from .score import fit_weights

    rows = read_jsonl(args.experiments)
    if len(rows) < 2:
        raise SystemExit(f"{args.experiments}: need at least 2 experiments, found {len(rows)}")
    table, outcomes = [], []
    for index, row in enumerate(rows, start=1):
        aspects = row.get("aspects") or {}
        missing = [a for a in SCORING_ASPECTS if a not in aspects]
        if missing or "outcome" not in row:
            raise SystemExit(f"{args.experiments}: experiment {index} lacks {missing or ['outcome']}")
        table.append([float(aspects[a]) for a in SCORING_ASPECTS])
        outcomes.append(float(row["outcome"]))
    weights = fit_weights(np.array(table), np.array(outcomes), args.ridge_lambda)
    predicted = np.array(table) @ weights
    write_json(args.out, {
        "weights": dict(zip(SCORING_ASPECTS, [round(float(w), 8) for w in weights])),
        "ridge_lambda": args.ridge_lambda,
        "experiments": len(rows),
        "train_rmse": round(float(np.sqrt(np.mean((predicted - np.array(outcomes)) ** 2))), 8),
    })
    print(f"wrote {args.out} from {len(rows)} experiments")
    return 0


def resolve_model_command(args: argparse.Namespace) -> int:
    from .models import resolve

    resolved = resolve(args.name)
    print(json.dumps(resolved.__dict__, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scoder", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    fit = commands.add_parser("fit-weights", help="fit the aspect weights of eq. 2")
    fit.add_argument("experiments")
    fit.add_argument("--ridge-lambda", type=float, default=1.0)
    fit.add_argument("--out", default="weights.json")
    fit.set_defaults(handler=fit_weights_command)
    res = commands.add_parser("resolve-model", help="show where a model reference resolves to")
    res.add_argument("name")
    res.set_defaults(handler=resolve_model_command)
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
