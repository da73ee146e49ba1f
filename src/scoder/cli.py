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
    scoder cost estimate [--params params.yaml] [--profile configs/paper.yaml] [--json]
        Expected requests, tokens and USD (list and Batch API rates) per paid stage of a profile,
        from prompt lengths it measures and answer lengths it assumes. Calls no model.
    scoder lock-diff A/dvc.lock B/dvc.lock
        Compare the output hashes of two pipeline runs; exit 1 if any output differs.
    scoder export [--params params.yaml] [--out data/export] [--push-to-hub ORG/NAME] [--private]
        The final dataset as a Hugging Face dataset folder (parquet + dataset card), as the
        export stage writes it; optionally uploaded to a Hub dataset repo (docs/export.md).
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


def cost_estimate_command(args: argparse.Namespace) -> int:
    import dataclasses

    from scoder.bootstrap.cost_estimate import estimate, render
    from scoder.core.profile import load_profile

    try:
        answers = {}
        for item in args.answer_tokens:
            role, _, value = item.partition("=")
            if role not in ("teacher", "scorer") or not value.isdigit():
                raise ValueError(f"--answer-tokens {item!r}: expected teacher=N or scorer=N")
            answers[role] = int(value)
        rows, measured = estimate(load_profile(args.params, args.profile), args.pool, answers)
    except (ValueError, FileNotFoundError) as exc:
        print(f"scoder cost estimate: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"rows": [dataclasses.asdict(r) for r in rows], "measured": measured}, indent=2))
    else:
        source = f"{args.params} + {args.profile}" if args.profile else args.params
        print(f"cost estimate for {source}\n")
        print(render(rows, measured) if rows else "no paid model role in this profile (every model is local)")
    return 0


def export_command(args: argparse.Namespace) -> int:
    """The export stage's code path by hand, then (optionally) the upload; a user's mistake or
    an offline push is one line on stderr and exit 1, not a traceback."""
    from scoder.bootstrap.export import ExportConfig, ExportError, export_folder, params_getter, push_to_hub, read_params
    from scoder.core.params import from_dict, load_params

    try:
        params = load_params(args.params)
        config = from_dict(ExportConfig, params.get("export"), "export")
        result = export_folder(args.dataset, args.metrics_dir, args.out, config, read_params(params_getter(params)),
                               args.params)
        print(f"wrote {args.out}: {result['rows']} rows in {result['shards']} parquet shard(s) and README.md "
              f"(commit {result['git_commit'][:12]}{', dirty tree' if result['git_dirty'] else ''})")
        if args.push_to_hub:
            url = push_to_hub(args.out, args.push_to_hub, private=args.private)
            print(f"pushed to https://huggingface.co/datasets/{args.push_to_hub} ({url})")
    except (ExportError, ValueError, FileNotFoundError) as exc:
        print(f"scoder export: {exc}", file=sys.stderr)
        return 1
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
    export = commands.add_parser("export", help="the final dataset as a Hugging Face dataset folder; push it to the Hub")
    export.add_argument("--params", default="params.yaml")
    export.add_argument("--dataset", default="data/synthesize/dataset.jsonl", help="the final dataset (JSONL)")
    export.add_argument("--metrics-dir", default="metrics", help="where the card reads the run's metrics")
    export.add_argument("--out", default="data/export", help="the dataset folder to write (default: data/export)")
    export.add_argument("--push-to-hub", metavar="REPO", default=None, help="upload the folder to this Hub dataset repo")
    export.add_argument("--private", action="store_true", help="create the Hub repo private")
    export.set_defaults(handler=export_command)
    cost = commands.add_parser("cost", help="the bill of a params profile").add_subparsers(dest="action", required=True)
    estimate = cost.add_parser("estimate", help="expected tokens and USD per paid stage; no model is called")
    estimate.add_argument("--params", default="params.yaml")
    estimate.add_argument("--profile", default=None, help="overlay merged onto --params, e.g. configs/paper.yaml")
    estimate.add_argument("--pool", default="data/pool/snippets.jsonl",
                          help="snippets to measure prompts on (default: the pool; else the standard library)")
    estimate.add_argument("--answer-tokens", action="append", default=[], metavar="ROLE=N",
                          help="assumed answer tokens per request of a role (teacher, scorer)")
    estimate.add_argument("--json", action="store_true")
    estimate.set_defaults(handler=cost_estimate_command)
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
