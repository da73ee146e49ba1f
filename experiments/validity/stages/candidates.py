"""Validity stage `candidates`: real instruction pairs mixed with known corruptions (labelled),
and a disjoint slice of real pairs as D_p."""

from scoder.core.stage import Input, Output, Stage, run_stage

STAGE = Stage(
    "candidates",
    "labelled candidates: real pairs and four known corruptions; D_p a disjoint real slice",
    config="scoder.validity.candidates:CandidatesConfig",
    inputs=(Input("evol", "${candidates.evol}", help="problem / solution pairs (the recorded teacher's slice)"),
            Input("mbpp", "${candidates.mbpp}", help="MBPP tasks not in MBPP+, with their tests")),
    outputs=(Output("candidates_file", "data/candidates.jsonl"), Output("dp", "data/dp.jsonl")),
    paper="validity",
)


def work(ctx):
    from scoder.core.io import read_records, write_jsonl
    from scoder.validity.candidates import build_candidates, evol_pairs, mbpp_pairs

    evol = evol_pairs(read_records(ctx.path("evol")), str(ctx.path("evol")))
    mbpp = mbpp_pairs(read_records(ctx.path("mbpp")), str(ctx.path("mbpp")))
    ctx.log.info("building candidates from %d evol pairs and %d MBPP tasks (reference solutions checked in the sandbox)",
                 len(evol), len(mbpp))
    candidates, dp, metrics = build_candidates(evol, mbpp, ctx.config)
    write_jsonl(ctx.path("candidates_file"), candidates)
    write_jsonl(ctx.path("dp"), dp)
    ctx.log.info("%d candidates (%s), D_p %d", metrics["candidates"], metrics["by_corruption"], metrics["dp"])
    return metrics


if __name__ == "__main__":
    run_stage(STAGE, work)
