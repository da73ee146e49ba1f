"""DVC stage `dp_features`: plain projected LoRA gradients of the teacher's samples D_p under
the reference model, and the target direction (the mean of the normalized features).
`--shard i/n` computes every n-th shard only; `--shard auto` takes i/n from the launcher (the
runner adds it when it starts the stage under `influence.launcher`)."""

from scoder.core.stage import Input, Option, Output, Stage, run_stage

STAGE = Stage(
    "dp_features",
    "projected gradient features of D_p and the influence target direction",
    section="influence",
    config="scoder.bootstrap.feature_stages:InfluenceConfig",
    params=("reference.require_parse_ok",),
    inputs=(Input("data", "data/distill/samples.jsonl"), Input("reference", "data/reference")),
    outputs=(
        Output("out_dir", "data/influence/dp", folder=True, persist=True, help="feature shards (resumable)"),
        Output("target", "data/influence/target.npy"),
    ),
    metrics="metrics/influence/dp.json",
    options=(Option("shard", "0/1", "i/n, or auto: this process's rank and world size from the launcher",
                    launched="auto"),),
    launcher="influence.launcher",
)


def work(ctx):
    from scoder.bootstrap.feature_stages import dp_features

    return dp_features(ctx, require_parse_ok=bool(ctx.param("reference.require_parse_ok")))


if __name__ == "__main__":
    run_stage(STAGE, work)
