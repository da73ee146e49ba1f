"""DVC stage `reference`: the influence reference model, LoRA-trained on the teacher's D_p
with its Adam state saved (SCoder section 3.4)."""

from scoder.core.stage import Input, Output, Stage, run_stage

STAGE = Stage(
    "reference",
    "the influence reference model: LoRA SFT on D_p, with Adam state",
    config="scoder.bootstrap.synthesizer:SynthesizerTrainConfig",
    inputs=(Input("data", "data/distill/samples.jsonl"),),
    outputs=(Output("out_dir", "data/reference", folder=True),),
    launcher="reference.launcher",
)


def work(ctx):
    from scoder.bootstrap.synthesizer import train_synthesizer

    return train_synthesizer(ctx.path("data"), ctx.config, ctx.path("out_dir"), "reference")


if __name__ == "__main__":
    run_stage(STAGE, work)
