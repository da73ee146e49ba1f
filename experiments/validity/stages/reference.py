"""Validity stage `reference`: the influence reference model, LoRA-trained on D_p with its
Adam state saved (as the main pipeline's `reference`, on instruction pairs)."""

from scoder.core.stage import Input, Output, Stage, run_stage

STAGE = Stage(
    "reference",
    "the influence reference model: LoRA SFT on D_p, with Adam state",
    config="scoder.training.sft:TrainConfig",
    inputs=(Input("dp", "data/dp.jsonl"),),
    outputs=(Output("out_dir", "data/reference", folder=True),),
    paper="validity",
)


def work(ctx):
    from scoder.core.io import read_jsonl
    from scoder.training.sft import train_sft
    from scoder.validity.experiment import training_examples, write_manifest

    examples = training_examples(read_jsonl(ctx.path("dp")))
    ctx.log.info("training the reference on %d D_p pairs", len(examples))
    result = train_sft(examples, ctx.config, ctx.path("out_dir"))
    last = f"checkpoint-{result['checkpoints'][-1]['checkpoint']}"
    write_manifest(ctx.path("out_dir"), ctx.config.model, ctx.config.method, last, {"examples": result["examples"]})
    return {k: result[k] for k in ("examples", "dropped_too_long", "steps", "train_loss", "precision")}


if __name__ == "__main__":
    run_stage(STAGE, work)
