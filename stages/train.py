"""DVC stage `train@K`: synthesizer K, fine-tuned with LoRA on synthesis samples, saving M
checkpoints with their Adam state (K=0: on the teacher's D_p, the "enhanced synthesizer";
K>=1: on round K's selected samples, continuing the LoRA adapter of the synthesizer named by
its `init`, as the paper trains "the synthesizer itself"; `init: base` starts from train.model)."""

from scoder.core.stage import Input, Output, Stage, run_stage

STAGE = Stage(
    "train",
    "synthesizer K: LoRA SFT on its samples, M checkpoints with Adam state",
    foreach="synthesizers",
    config="scoder.bootstrap.synthesizer:SynthesizerTrainConfig",
    inputs=(
        Input("data", "${item.data}", help="synthesis samples (JSONL with snippet, problem, solution)"),
        Input("init", "data/synthesizer/${item.init}",
              help="the synthesizer to continue (a train@K folder), or data/synthesizer/base: a new adapter"),
    ),
    outputs=(Output("out_dir", "data/synthesizer/${key}", folder=True),),
    launcher="train.launcher",
)


def work(ctx):
    from scoder.bootstrap.synthesizer import train_synthesizer

    return train_synthesizer(ctx.path("data"), ctx.config, ctx.path("out_dir"), ctx.key, init=ctx.path("init"))


if __name__ == "__main__":
    run_stage(STAGE, work)
