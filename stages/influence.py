"""DVC stage `influence@R`: Adam-aware projected gradients of round R's best candidates and
their influence, the cosine to the target direction (SCoder eq. 4)."""

from scoder.core.stage import Input, Option, Output, Stage, run_stage

STAGE = Stage(
    "influence",
    "Adam-aware gradient features of round R's best candidates and their influence",
    foreach="rounds",
    config="scoder.bootstrap.feature_stages:InfluenceConfig",
    inputs=(
        Input("data", "data/rounds/${key}/best.jsonl"),
        Input("reference", "data/reference"),
        Input("target", "data/influence/target.npy"),
    ),
    outputs=(
        Output("out_dir", "data/rounds/${key}/features", folder=True, persist=True, help="feature shards (resumable)"),
        Output("scores", "data/rounds/${key}/influence.jsonl"),
    ),
    options=(Option("shard", "0/1", "i/n, or auto: this process's rank and world size from the launcher",
                    launched="auto"),),
    launcher="influence.launcher",
)


def work(ctx):
    from scoder.bootstrap.feature_stages import candidate_influence

    return candidate_influence(ctx)


if __name__ == "__main__":
    run_stage(STAGE, work)
