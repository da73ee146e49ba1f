"""`scoder` command line: small tools around the pipeline.

    scoder fit-weights EXPERIMENTS.jsonl --ridge-lambda 1.0 --out weights.json
        Eq. 2 of SCoder: ridge regression from K experiments, each a JSON line with
        "aspects" (mean aspect scores by name) and "outcome" (out-of-distribution score).
    scoder resolve-model NAME
        Where a model reference from params resolves to (shipped alias, folder or hub name).
    scoder params check [--params params.yaml] [--profile configs/paper.yaml]
        Dry run of a params file (with a profile overlay merged on): every section parsed,
        every model and endpoint resolvable by name. Loads and downloads nothing.
    scoder params apply configs/paper.yaml [--params params.yaml] -o params.yaml
        Write the params file with the profile merged on (checked first).
    scoder provenance [--metrics-dir metrics] [--json]
        Map every metrics file to the MLflow run that wrote its exact bytes (stage, git commit,
        dvc.lock hash); exit 1 if any file has no such run. Run from the repository root.
    scoder lock-diff A/dvc.lock B/dvc.lock
        Compare the output hashes of two pipeline runs; exit 1 if any output differs.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def fit_weights_command(args: argparse.Namespace) -> int:
    from scoder.core.io import read_jsonl, write_json
    from scoder.bootstrap.prompts import SCORING_ASPECTS
    from scoder.bootstrap.aspects import fit_weights

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
    from scoder.models.registry import resolve

    resolved = resolve(args.name)
    print(json.dumps(resolved.__dict__, indent=2))
    return 0


def params_check_command(args: argparse.Namespace) -> int:
    from scoder.core.profile import check_params, load_profile

    try:
        models = check_params(load_profile(args.params, args.profile))
    except (ValueError, FileNotFoundError) as exc:
        print(exc, file=sys.stderr)
        return 1
    source = f"{args.params} + {args.profile}" if args.profile else args.params
    width = max(len(k) for k in models)
    print(f"{source}: every section parses; models and endpoints by name:")
    for where, target in models.items():
        print(f"  {where:<{width}}  {target}")
    return 0


def params_apply_command(args: argparse.Namespace) -> int:
    import yaml

    from scoder.core.io import write_text
    from scoder.core.profile import check_params, load_profile

    merged = load_profile(args.params, args.profile)
    check_params(merged)
    header = f"# {args.params} with {args.profile} merged on (scoder params apply)\n"
    write_text(args.out, header + yaml.safe_dump(merged, sort_keys=False, allow_unicode=True))
    print(f"wrote {args.out}")
    return 0


def provenance_command(args: argparse.Namespace) -> int:
    from scoder.core.tracking import provenance

    rows = provenance(args.metrics_dir)
    missing = [r["metrics_file"] for r in rows if not (r["run_id"] and r["git_commit"] and r["dvc_lock_hash"])]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            print(f"{r['metrics_file']:45} {r['run_id'] or 'NO RUN':32} {r['stage'] or '':22} "
                  f"commit {(r['git_commit'] or '-')[:12]:12} dvc.lock {r['dvc_lock_hash'] or '-'}")
    if not rows:
        print(f"no metrics files under {args.metrics_dir}", file=sys.stderr)
        return 1
    if missing:
        print(f"{len(missing)} of {len(rows)} metrics files have no finished MLflow run with these bytes: {missing}",
              file=sys.stderr)
        return 1
    return 0


def lock_outputs(lock_file: str) -> dict[str, str]:
    """{output path: md5} over every stage of a dvc.lock."""
    from pathlib import Path

    import yaml

    lock = yaml.safe_load(Path(lock_file).read_text(encoding="utf-8")) or {}
    return {out["path"]: out.get("md5", "") for stage in (lock.get("stages") or {}).values() for out in stage.get("outs") or []}


def lock_diff_command(args: argparse.Namespace) -> int:
    first, second = lock_outputs(args.first), lock_outputs(args.second)
    differ = sorted(p for p in first.keys() | second.keys() if first.get(p) != second.get(p))
    for path in differ:
        print(f"{path}: {first.get(path, 'absent')} vs {second.get(path, 'absent')}")
    print(f"{len(first.keys() | second.keys()) - len(differ)} outputs identical, {len(differ)} differ")
    return 1 if differ else 0


def pipeline_command(args: argparse.Namespace) -> int:
    """generate: rewrite dvc.yaml and the README's stage table from the stage declarations;
    check: exit 1 (naming the files) when either has drifted from them."""
    from scoder.core.pipeline import generate

    drift = generate(args.root, write=args.action == "generate")
    if args.action == "generate":
        print(f"regenerated {', '.join(drift)}" if drift else "dvc.yaml and README stage table already up to date")
        return 0
    if drift:
        print(f"out of date with the stage declarations in stages/: {', '.join(drift)}; "
              "run `scoder pipeline generate`", file=sys.stderr)
        return 1
    print("dvc.yaml and README stage table match the stage declarations")
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
    params = commands.add_parser("params", help="check or apply a params profile").add_subparsers(dest="action", required=True)
    check = params.add_parser("check", help="dry run: parse every section, resolve models and endpoints")
    check.add_argument("--params", default="params.yaml")
    check.add_argument("--profile", default=None, help="overlay merged onto --params, e.g. configs/paper.yaml")
    check.set_defaults(handler=params_check_command)
    apply = params.add_parser("apply", help="write --params with the profile merged on")
    apply.add_argument("profile")
    apply.add_argument("--params", default="params.yaml")
    apply.add_argument("-o", "--out", required=True)
    apply.set_defaults(handler=params_apply_command)
    prov = commands.add_parser("provenance", help="map every metrics file to the MLflow run that wrote it")
    prov.add_argument("--metrics-dir", default="metrics")
    prov.add_argument("--json", action="store_true")
    prov.set_defaults(handler=provenance_command)
    diff = commands.add_parser("lock-diff", help="compare the output hashes of two dvc.lock files")
    diff.add_argument("first")
    diff.add_argument("second")
    diff.set_defaults(handler=lock_diff_command)
    pipe = commands.add_parser("pipeline", help="dvc.yaml and the README stage table from the stage declarations")
    pipe.add_argument("action", choices=["generate", "check"])
    pipe.add_argument("--root", default=".", help="repository root (default: .)")
    pipe.set_defaults(handler=pipeline_command)
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
