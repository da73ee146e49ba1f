"""DVC stage `scoder_train`: the code model, fine-tuned in two phases (general code
instructions, then the synthesized data; SCoder section 4.1)."""

from scoder.core.stage import Input, Output, Stage, run_stage

STAGE = Stage(
    "scoder_train",
    "the code model: two-phase SFT, general instructions then the synthesized data",
    config="scoder.bootstrap.code_model:ScoderTrainConfig",
    inputs=(Input("data", "data/synthesize/dataset.jsonl", help="the synthesized dataset (phase 2)"),),
    outputs=(Output("out_dir", "data/scoder", folder=True),),
    launcher="scoder_train.launcher",
)


def work(ctx):
    from scoder.bootstrap.code_model import train_code_model

    return train_code_model(ctx.path("data"), ctx.config, ctx.path("out_dir"))


if __name__ == "__main__":
    run_stage(STAGE, work)
