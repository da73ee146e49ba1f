"""Validity stage `influence`: projected LoRA gradients under the reference model; the target
direction from D_p's plain gradients; each candidate's influence (eq. 4) with the Adam-aware
transform (SCoder) and with plain gradients (LESS without the optimizer, the ablation)."""

from scoder.core.stage import Input, Output, Stage, run_stage

STAGE = Stage(
    "influence",
    "Adam-aware and plain-gradient influence of every candidate on D_p's target direction",
    config="scoder.bootstrap.influence:FeatureConfig",
    inputs=(Input("candidates_file", "data/candidates.jsonl"), Input("dp", "data/dp.jsonl"),
            Input("reference", "data/reference")),
    outputs=(Output("features", "data/features", folder=True, persist=True, help="feature shards (resumable)"),
             Output("signals", "data/signals/influence.jsonl")),
    paper="validity",
)


def work(ctx):
    import json

    import numpy as np

    from scoder.bootstrap.influence import (compute_features, influence_scores, load_features, load_reference,
                                            target_direction)
    from scoder.core.io import read_jsonl, write_jsonl
    from scoder.validity.experiment import training_examples

    manifest = json.loads((ctx.path("reference") / "model.json").read_text(encoding="utf-8"))
    model, tokenizer, adam = load_reference(ctx.path("reference") / manifest["adapter"], manifest["base_model"])
    if adam is None:
        raise SystemExit(f"{ctx.path('reference')}: the reference checkpoint has no Adam state")
    candidates = training_examples(read_jsonl(ctx.path("candidates_file")))
    sets = {"dp": (training_examples(read_jsonl(ctx.path("dp"))), None), "adam": (candidates, adam),
            "sgd": (candidates, None)}
    features = {}
    for name, (examples, state) in sets.items():
        folder = ctx.path("features") / name
        ctx.log.info("%s features of %d examples", name, len(examples))
        compute_features(model, tokenizer, examples, ctx.config, folder, adam=state)
        features[name] = load_features(folder, expected=len(examples))
    target = target_direction(features["dp"][0])
    rows = {c["id"]: {"id": c["id"]} for c in candidates}
    unscored = {}
    for name in ("adam", "sgd"):
        values, losses, ids = features[name]
        usable = ~np.isnan(losses)  # no response token inside max_length: no gradient, no influence
        scores = influence_scores(values, target)
        for i, identifier in enumerate(ids):
            rows[identifier][f"influence_{name}"] = round(float(scores[i]), 8) if usable[i] else None
        unscored[name] = int((~usable).sum())
    write_jsonl(ctx.path("signals"), list(rows.values()))
    return {"candidates": len(candidates), "dp": len(sets["dp"][0]), "proj_dim": ctx.config.proj_dim,
            "no_response_tokens": unscored}


if __name__ == "__main__":
    run_stage(STAGE, work)
