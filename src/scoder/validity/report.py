"""The validity experiment's results: markdown table, JSON metrics and a plot whose axes start
at zero (AUC on [0, 1] with the chance line; NLL from 0), so a 1% difference looks like one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from scoder.core.io import atomic_path, read_jsonl, write_text
from scoder.validity.signals import bootstrap_mean, paired_difference


def _nll(folder: Path) -> dict[str, dict[str, float]]:
    return {path.stem.removeprefix("nll-"): {row["task_id"]: row["nll"] for row in read_jsonl(path)}
            for path in sorted(folder.glob("nll-*.jsonl"))}


def downstream_table(downstream: Path, arms: Sequence[str], samples: int, seed: int,
                     baselines: Sequence[str] = ("base", "random")) -> dict:
    """Per arm and dataset: mean canonical NLL with a bootstrap interval over tasks, and the
    paired difference to each of `baselines` (arms measured on the same tasks)."""
    nll = {arm: _nll(downstream / arm) for arm in arms}
    table: dict = {}
    for arm in arms:
        entry = {}
        for dataset, values in nll[arm].items():
            tasks = sorted(values)
            mean, low, high = bootstrap_mean([values[t] for t in tasks], samples, seed)
            entry[dataset] = {"tasks": len(tasks), "nll": round(mean, 5), "low": round(low, 5), "high": round(high, 5)}
            for other in baselines:
                if other in nll and other != arm and dataset in nll[other]:
                    if sorted(nll[other][dataset]) != tasks:
                        raise ValueError(f"arms {arm} and {other} were measured on different {dataset} tasks")
                    diff, lo, hi = paired_difference([values[t] for t in tasks], [nll[other][dataset][t] for t in tasks],
                                                     samples, seed)
                    entry[dataset][f"minus_{other}"] = {"mean": round(diff, 5), "low": round(lo, 5), "high": round(hi, 5)}
        table[arm] = entry
    return table


def _interval(value: float, low: float, high: float, digits: int = 3) -> str:
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def kspecialist_markdown(table: dict, metrics: dict) -> list[str]:
    datasets = sorted({d for entry in table.values() for d in entry})
    first = next(iter(table))
    lines = ["", f"K-Specialist (seed 002 Table 3 shape): K LoRA specialists on the same instruction set, each task's "
             f"canonical NLL under the specialist its query is routed to; paired difference to K={first}.", "",
             "| K | cluster sizes | steps | " + " | ".join(f"{d} NLL | {d} - K={first} | {d} routed" for d in datasets) + " |",
             "|---|---|---|" + "---|---|---|" * len(datasets)]
    for key, entry in table.items():
        meta = metrics[key]
        cells = []
        for d in datasets:
            e = entry.get(d, {})
            cells.append(_interval(e["nll"], e["low"], e["high"]) if e else "-")
            diff = e.get(f"minus_{first}")
            cells.append(_interval(diff["mean"], diff["low"], diff["high"], 4) if diff else "-")
            cells.append(str(meta.get(f"{d}_routed", "-")))
        lines.append(f"| {meta['k']} | {meta['cluster_sizes']} | {meta['steps']} | " + " | ".join(cells) + " |")
    return lines


def markdown(auc: dict, downstream: dict, finetune: dict, kspecialist: dict | None = None,
             kspecialist_metrics: dict | None = None) -> str:
    signals = auc["signals"]
    kinds = sorted({kind for entry in signals.values() for kind in entry["by_corruption"]})
    lines = [f"Candidates: {auc['candidates']} ({auc['real']} real, {auc['candidates'] - auc['real']} degraded). "
             "ROC-AUC of real vs degraded with a bootstrap 95% interval (class sizes kept); 0.5 is chance. "
             "'within source': computed inside each source dataset (evol, MBPP) and averaged, so a signal that "
             "only recognises a dataset's style gains nothing; the per-corruption columns are within source too "
             "(planted bugs exist for MBPP only). Unscored candidates rank last; 'scored only' leaves them out.", "",
             "| signal | AUC | AUC within source | " + " | ".join(f"AUC {k}" for k in kinds)
             + " | AUC scored only | degraded in top k | unscored |",
             "|---|---|---|" + "---|" * len(kinds) + "---|---|---|"]
    for name, entry in signals.items():
        per = [_interval(entry["by_corruption"][k]["auc"], entry["by_corruption"][k]["low"], entry["by_corruption"][k]["high"], 2)
               for k in kinds]
        within = (_interval(entry["auc_within_source"], entry["auc_within_source_low"], entry["auc_within_source_high"])
                  if "auc_within_source" in entry else "-")
        scored = entry.get("auc_scored_only")
        lines.append(f"| {name} | {_interval(entry['auc'], entry['auc_low'], entry['auc_high'])} | {within} | "
                     + " | ".join(per) + f" | {'-' if scored is None else f'{scored:.3f}'} | "
                     f"{entry['top_k_degraded']}/{entry['top_k']} | {entry['unscored']} |")
    datasets = sorted({d for entry in downstream.values() for d in entry})
    lines += ["", "Downstream: the base model fine-tuned on each signal's top k (same k, same steps); mean NLL per token "
              "of the canonical solutions of every task (lower is better), bootstrap 95% interval over tasks, and the "
              "paired difference to the base model and to random.", "",
              "| arm | degraded in training set | " + " | ".join(f"{d} NLL | {d} - base | {d} - random" for d in datasets) + " |",
              "|---|---|" + "---|---|---|" * len(datasets)]
    for arm, entry in downstream.items():
        meta = finetune.get(arm, {})
        degraded = f"{meta['selected_degraded']}/{meta['selected']}" if "selected" in meta else "-"
        cells = []
        for d in datasets:
            e = entry.get(d, {})
            cells.append(_interval(e["nll"], e["low"], e["high"]) if e else "-")
            for other in ("base", "random"):
                diff = e.get(f"minus_{other}")
                cells.append(_interval(diff["mean"], diff["low"], diff["high"], 4) if diff else "-")
        lines.append(f"| {arm} ({meta.get('signal') or 'no training'}) | {degraded} | " + " | ".join(cells) + " |")
    if kspecialist:
        lines += kspecialist_markdown(kspecialist, kspecialist_metrics or {})
    return "\n".join(lines) + "\n"


def plot(auc: dict, downstream: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    signals = auc["signals"]
    datasets = sorted({d for entry in downstream.values() for d in entry})
    figure, axes = plt.subplots(1, 1 + len(datasets), figsize=(5 + 4 * len(datasets), 0.4 * max(len(signals), len(downstream)) + 1.5))
    names = list(signals)
    ax = axes[0]
    values = [signals[n]["auc"] for n in names]
    errors = [[v - signals[n]["auc_low"] for n, v in zip(names, values)], [signals[n]["auc_high"] - v for n, v in zip(names, values)]]
    ax.barh(names, values, xerr=errors, color="#4c72b0", capsize=3)
    ax.axvline(0.5, color="grey", linestyle="--", linewidth=1)
    ax.set_xlim(0, 1)
    ax.set_xlabel("ROC-AUC real vs degraded (95% CI); 0.5 = chance")
    ax.invert_yaxis()
    arms = list(downstream)
    for ax, dataset in zip(axes[1:], datasets):
        rows = [(a, downstream[a][dataset]) for a in arms if dataset in downstream[a]]
        means = [e["nll"] for _, e in rows]
        errors = [[e["nll"] - e["low"] for _, e in rows], [e["high"] - e["nll"] for _, e in rows]]
        ax.barh([a for a, _ in rows], means, xerr=errors, color="#55a868", capsize=3)
        ax.set_xlim(0, max(e["high"] for _, e in rows) * 1.1)  # from zero: no exaggerated differences
        ax.set_xlabel(f"{dataset}: canonical NLL per token (95% CI)")
        ax.invert_yaxis()
    figure.tight_layout()
    with atomic_path(path) as scratch:
        figure.savefig(scratch, format="png", dpi=110)
    plt.close(figure)


def write_report(auc_file: Path, downstream: Path, finetune_dir: Path, arms: Sequence[str], kspecialist_dir: Path,
                 kspecialist_metrics_dir: Path, ks: Sequence[str], markdown_file: Path, plot_file: Path, samples: int,
                 seed: int) -> dict:
    auc = json.loads(Path(auc_file).read_text(encoding="utf-8"))
    table = downstream_table(Path(downstream), arms, samples, seed)
    finetune = {arm: json.loads((Path(finetune_dir) / f"{arm}.json").read_text(encoding="utf-8")) for arm in arms}
    ks = [str(k) for k in ks]
    kspec = downstream_table(Path(kspecialist_dir), ks, samples, seed, baselines=ks[:1]) if ks else {}
    kspec_metrics = {k: json.loads((Path(kspecialist_metrics_dir) / f"{k}.json").read_text(encoding="utf-8")) for k in ks}
    write_text(markdown_file, markdown(auc, table, finetune, kspec, kspec_metrics))
    plot(auc, table, Path(plot_file))
    return {"signals": {name: {k: entry[k] for k in ("auc", "auc_low", "auc_high")} for name, entry in auc["signals"].items()},
            "downstream": table, "kspecialist": kspec}


def pass_at_1_table(metrics_dir: Path, data_dir: Path, models: Sequence[str], samples: int, seed: int) -> dict:
    """Per model: its pass@1 (base and plus tests) with intervals, and the paired difference to
    the first model (`pass_at_1.models` lists the base model first) over the same tasks
    (bootstrap over tasks)."""
    table, passed = {}, {}
    for model in models:
        rows = read_jsonl(Path(data_dir) / model / "passed.jsonl")
        passed[model] = {r["task_id"]: r for r in rows}
        if len(passed[model]) != len(rows):
            raise ValueError(f"pass@1 of {model} holds more than one answer for some task: pass@1 here is greedy, one each")
    first = models[0]
    for model in models:
        meta = json.loads((Path(metrics_dir) / f"{model}.json").read_text(encoding="utf-8"))
        if set(passed[model]) != set(passed[first]):
            raise ValueError(f"pass@1 of {model} and {first} are on different tasks: rerun pass_at_1@{model}")
        tasks = sorted(passed[model])
        entry = {"kind": meta["kind"], "arm": meta.get("arm"), "k": meta.get("k"), "tasks": len(tasks),
                 "dataset": meta.get("dataset")}
        for name in ("base", "plus"):
            values = [float(passed[model][t][name]) for t in tasks]
            mean, low, high = bootstrap_mean(values, samples, seed)
            entry[name] = {"pass@1": round(mean, 4), "low": round(low, 4), "high": round(high, 4)}
            if model != first:
                d, dl, dh = paired_difference(values, [float(passed[first][t][name]) for t in tasks], samples, seed)
                entry[name][f"minus_{first}"] = {"mean": round(d, 4), "low": round(dl, 4), "high": round(dh, 4)}
        table[model] = entry
    return table


def pass_at_1_markdown(table: dict) -> str:
    first = next(iter(table))
    lines = [f"Greedy pass@1 on all {table[first]['tasks']} {table[first]['dataset']} tasks (evalplus prompt, sandboxed tests), bootstrap "
             f"95% intervals over tasks; paired difference to {first} over the same tasks.", "",
             f"| model | kind | arm / K | pass@1 (base tests) | - {first} | pass@1 (plus tests) | - {first} |",
             "|---|---|---|---|---|---|---|"]
    for model, e in table.items():
        cells = []
        for name in ("base", "plus"):
            cells.append(_interval(e[name]["pass@1"], e[name]["low"], e[name]["high"]))
            d = e[name].get(f"minus_{first}")
            cells.append(_interval(d["mean"], d["low"], d["high"]) if d else "-")
        which = e["arm"] if e["kind"] != "kspecialist" else f"K={e['k']}"
        lines.append(f"| {model} | {e['kind']} | {which} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_pass_at_1_report(metrics_dir: Path, data_dir: Path, models: Sequence[str], markdown_file: Path,
                           samples: int, seed: int) -> dict:
    table = pass_at_1_table(Path(metrics_dir), Path(data_dir), list(models), samples, seed)
    write_text(markdown_file, "# Validity experiment: pass@1\n\n" + pass_at_1_markdown(table))
    return {"pass_at_1": table}
