"""DVC stages `dp_features` and `influence@R`: projected LoRA gradient features under the
reference model. `--kind dp`: plain gradients of the teacher's samples D_p and the target
direction (mean of normalized features). `--kind candidates`: Adam-aware gradients of a
round's best candidates and their influence (eq. 4). `--shard i/n` computes every n-th
feature shard only (for several processes or machines); scores are written once all shards
exist. `--shard auto` takes i/n from the launcher (`accelerate launch` or `torchrun`): every
process computes its shards, then the main process alone merges them, writes the scores and
records the MLflow run."""

from __future__ import annotations

import logging

from scoder.core.stage import load_section, quiet_threads, setup_logging, stage_parser

quiet_threads()

import numpy as np  # noqa: E402

from scoder.bootstrap.influence import (  # noqa: E402
    FeatureConfig, compute_features, features_complete, influence_scores, load_features, load_reference, save_target,
    target_direction,
)
from scoder.core.io import read_jsonl, write_json, write_jsonl  # noqa: E402
from scoder.core.params import from_dict  # noqa: E402
from scoder.bootstrap.sample import read_synthesizer  # noqa: E402
from scoder.core.tracking import stage_run  # noqa: E402
from scoder.training.sft import synthesis_examples  # noqa: E402

log = logging.getLogger("stage.influence")


def parse_shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise SystemExit(f"--shard must look like 0/4, got {text!r}") from None
    return index, count


def process_shard(text: str):
    """((index, count), distributed state or None) for --shard."""
    if text != "auto":
        return parse_shard(text), None
    import torch
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())
    log.info("feature process %d of %d (%s)", state.process_index, state.num_processes, state.device)
    return (state.process_index, state.num_processes), state


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--kind", choices=["dp", "candidates"], required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--reference", required=True, help="folder written by the reference stage")
    parser.add_argument("--out-dir", required=True, help="feature shards")
    parser.add_argument("--target", help="dp: where to write the target direction; candidates: where to read it")
    parser.add_argument("--scores", help="candidates: the records with their influence (JSONL)")
    parser.add_argument("--metrics", required=True)
    parser.add_argument("--round", default="")
    parser.add_argument("--shard", default="0/1", help="i/n, or auto: this process's rank and world size from the launcher")
    args = parser.parse_args()
    setup_logging()
    params, section = load_section(args.params, "influence")
    config = from_dict(FeatureConfig, {k: v for k, v in section.items() if k != "max_dp"}, "influence")
    max_dp = int(section.get("max_dp", 0))
    shard, state = process_shard(args.shard)
    name = "dp_features" if args.kind == "dp" else f"influence@{args.round}"
    records = read_jsonl(args.data)
    if args.kind == "dp":
        require = bool((params.get("reference") or {}).get("require_parse_ok", True))
        examples, skipped = synthesis_examples(records, require, max_dp)
    else:  # the scorer already chose these; learn what each would teach, raw answer if unparsed
        examples, skipped = synthesis_examples(records, require_parse_ok=False)
    reference = read_synthesizer(args.reference)
    model, tokenizer, adam = load_reference(reference["checkpoints"][-1], reference["base_model"])
    if args.kind == "candidates" and adam is None:
        raise SystemExit(f"{args.reference}: the reference checkpoint has no Adam state")
    if state is not None:
        model = model.to(state.device)

    def compute() -> dict:
        counts = compute_features(model, tokenizer, examples, config, args.out_dir,
                                  adam=adam if args.kind == "candidates" else None, shard=shard)
        if state is not None:
            state.wait_for_everyone()  # every process's shards exist before the main one merges
        return counts

    if state is not None and not state.is_main_process:
        compute()
        return
    with stage_run(name, {"influence": section}, args.params) as run:
        counts = compute()
        if not features_complete(args.out_dir, len(examples), config):
            log.info("shard %s done; scores are written when every shard exists", args.shard)
            return
        features, losses, ids = load_features(args.out_dir, expected=len(examples))
        metrics = {**counts, "examples": len(examples), "skipped": skipped, "proj_dim": config.proj_dim,
                   "mean_reference_loss": round(float(np.nanmean(losses)), 6) if len(losses) else None}
        if args.kind == "dp":
            save_target(args.target, target_direction(features))
        else:
            target = np.load(args.target)
            # a sample whose prompt fills max_length has no response token: no loss, no gradient, no influence
            usable = ~np.isnan(losses)
            scores = dict(zip([i for i, u in zip(ids, usable) if u], influence_scores(features[usable], target).tolist()))
            loss_by_id = dict(zip(ids, losses.tolist()))
            metrics["no_response_tokens"] = int((~usable).sum())
            out = []
            for record in records:
                value = scores.get(str(record.get("id")))
                out.append({**record, "influence": None if value is None else round(value, 8),
                            "reference_loss": None if value is None else round(loss_by_id[str(record["id"])], 6)})
            write_jsonl(args.scores, out)
            if not scores:
                raise SystemExit(f"{args.data}: no candidate has a response token within influence.max_length")
            values = np.array(list(scores.values()))
            metrics.update(round=args.round, influence_mean=round(float(values.mean()), 6), influence_min=round(float(values.min()), 6),
                           influence_max=round(float(values.max()), 6))
        write_json(args.metrics, metrics)
        run.log_metrics(metrics)
        log.info("%s: %d examples, %d shards (%d computed now)", name, len(examples), counts["shards"], counts["computed_shards"])


if __name__ == "__main__":
    main()
