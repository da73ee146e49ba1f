"""Validity stage `auc`: every signal against the labels: ROC-AUC of real vs degraded with a
bootstrap 95% interval, per corruption type, and the degraded share of each signal's top k."""

from scoder.core.stage import Input, Output, Stage, run_stage

STAGE = Stage(
    "auc",
    "ROC-AUC (bootstrap 95% CI) of every signal, per corruption, and its top-k degraded share",
    params=("select.k", "signals", "report.bootstrap", "report.seed"),
    inputs=(Input("candidates_file", "data/candidates.jsonl"), Input("aspects", "data/signals/aspects.jsonl"),
            Input("influence", "data/signals/influence.jsonl"), Input("baselines", "data/signals/baselines.jsonl")),
    outputs=(Output("table", "data/signals/table.jsonl"),
             Output("selections", "data/signals/top_k.json", help="each signal's top k candidate ids (finetune@ trains on them)")),
    dvc_metrics=True,
    paper="validity",
)


def work(ctx):
    from scoder.core.io import read_jsonl, write_json, write_jsonl
    from scoder.validity.experiment import merge_signals
    from scoder.validity.signals import signal_table

    rows = merge_signals(read_jsonl(ctx.path("candidates_file")),
                         *(read_jsonl(ctx.path(name)) for name in ("aspects", "influence", "baselines")))
    write_jsonl(ctx.path("table"), rows)
    table = signal_table(rows, list(ctx.param("signals")), int(ctx.param("select.k")),
                         int(ctx.param("report.bootstrap")), int(ctx.param("report.seed")))
    write_json(ctx.path("selections"), {name: entry.pop("top_k_ids") for name, entry in table.items()})
    for name, entry in table.items():
        ctx.log.info("%-15s AUC %.3f [%.3f, %.3f]  degraded in top %d: %d", name, entry["auc"], entry["auc_low"],
                     entry["auc_high"], entry["top_k"], entry["top_k_degraded"])
    return {"candidates": len(rows), "real": sum(r["label"] for r in rows), "signals": table}


if __name__ == "__main__":
    run_stage(STAGE, work)
