"""The run report: one self-contained HTML page (figures embedded as PNG) with the key tables,
and the data files behind `dvc plots` (score and influence histograms per round, pass@1 and
canonical-solution NLL per model, dollars per accepted sample by source)."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from pathlib import Path
from typing import Sequence

import numpy as np

from scoder.core.io import atomic_path, read_jsonl
from scoder.evaluation.summary import accepted_cost

COST_TITLE = "Cost per accepted sample"


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def round_values(rounds_dir: str | Path, file: str, field: str) -> dict[str, list[float]]:
    """{round key: values of `field`} from data/rounds/<R>/<file>, rounds in numeric order;
    records without the field (no score, no response token) are left out."""
    out = {}
    for folder in sorted(Path(rounds_dir).iterdir(), key=lambda p: (len(p.name), p.name)) if Path(rounds_dir).exists() else []:
        path = folder / file
        if path.exists():
            out[folder.name] = [float(r[field]) for r in read_jsonl(path) if isinstance(r.get(field), (int, float))]
    return out


def histogram_rows(values: dict[str, Sequence[float]], bins: int = 12) -> dict[str, list[dict]]:
    """Per round, counts over bins shared by every round (so the series line up)."""
    pooled = [v for vs in values.values() for v in vs]
    if not pooled:
        return {}
    low, high = min(pooled), max(pooled)
    edges = np.linspace(low, high if high > low else low + 1e-6, bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    return {key: [{"value": round(float(c), 6), "count": int(n)} for c, n in zip(centres, np.histogram(vs, edges)[0])]
            for key, vs in values.items()}


def evaluation_rows(evaluate: dict | None) -> list[dict]:
    """One row per (dataset, model): pass@1 on base tests, on plus tests when run, and NLL."""
    rows = []
    for dataset, block in (evaluate or {}).items():
        if dataset == "meta" or not isinstance(block, dict) or "skipped" in block:
            continue
        for model in ("base", "scoder"):
            if model in block:
                summary = block[model]
                rows.append({"label": f"{dataset}/{model}", "dataset": dataset, "model": model,
                             "base_pass@1": summary.get("base_pass@1"), "plus_pass@1": summary.get("plus_pass@1"),
                             "canonical_nll": summary.get("canonical_nll")})
    return rows


def _write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def cost_rows(cost: dict) -> list[dict]:
    """The bill by source (plots/cost.csv): what each source was paid, how many of its samples
    were accepted, the price per accepted sample (empty where there is none), and the final
    dataset's samples priced as if the teacher had written them."""
    return [
        {"source": "teacher", "accepted_samples": cost["teacher_accepted"], "cost_usd": cost["teacher_usd"],
         "usd_per_accepted": cost["teacher_usd_per_accepted"]},
        {"source": "synthesizer", "accepted_samples": cost["synthesizer_accepted"], "cost_usd": cost["synthesizer_usd"],
         "usd_per_accepted": cost["synthesizer_usd_per_accepted"]},
        {"source": "saved_at_teacher_price", "accepted_samples": cost["teacher_samples_saved"],
         "cost_usd": cost["teacher_equivalent_usd"], "usd_per_accepted": cost["teacher_usd_per_accepted"]},
    ]


def write_plot_data(plots_dir: str | Path, scores: dict, influence: dict, evaluation: list[dict],
                    cost: dict | None = None) -> list[Path]:
    """CSV files for dvc.yaml's plots: <dir>/scores/round_<R>.csv, <dir>/influence/round_<R>.csv
    (value, count), <dir>/evaluate.csv and <dir>/cost.csv (`accepted_cost`)."""
    plots_dir = Path(plots_dir)
    written = []
    for name, values in (("scores", scores), ("influence", influence)):
        for key, rows in histogram_rows(values).items():
            path = plots_dir / name / f"round_{key}.csv"
            _write_csv(path, rows)
            written.append(path)
    if evaluation:
        _write_csv(plots_dir / "evaluate.csv", evaluation)
        written.append(plots_dir / "evaluate.csv")
    if cost:
        _write_csv(plots_dir / "cost.csv", cost_rows(cost))
        written.append(plots_dir / "cost.csv")
    return written


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _usd(value: float | None) -> str:
    return "n/a" if value is None else f"${value:.4g}"


def cost_figure(cost: dict):
    """Left: USD per accepted sample, teacher vs synthesizer (no bar where there is no price,
    e.g. a teacher that got nothing accepted). Right: USD spent by each source, and what the
    final dataset would have cost from the teacher. Both axes start at zero."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(9.6, 3.6))
    per = [cost["teacher_usd_per_accepted"], cost["synthesizer_usd_per_accepted"]]
    labels = [f"teacher\n({cost['teacher_accepted']} of {cost['teacher_samples']} accepted)",
              f"synthesizer\n({cost['synthesizer_accepted']} accepted)"]
    bars = left.bar([0, 1], [np.nan if v is None else v for v in per], 0.6, color=["tab:red", "tab:green"])
    left.bar_label(bars, labels=[_usd(v) for v in per], fontsize=8)
    why = [f"no price:\n0 of {cost['teacher_samples']} accepted" if cost["teacher_accepted"] == 0 else "no price",
           "no price:\nempty dataset" if cost["synthesizer_accepted"] == 0 else "no price"]
    for position, value in enumerate(per):
        if value is None:  # say why there is no bar rather than draw a zero
            left.text(position, 0.5, why[position], ha="center", va="center", fontsize=9, color="tab:gray",
                      transform=left.get_xaxis_transform())
    left.set(xticks=[0, 1], ylabel="USD per accepted sample", title="USD per accepted sample by source")
    left.set_xticklabels(labels)
    left.set_xlim(-0.6, 1.6)  # a missing bar must not shrink the axis onto the other
    left.set_ylim(bottom=0)
    spent = [cost["teacher_usd"], cost["synthesizer_usd"], cost["teacher_equivalent_usd"]]
    bars = right.bar([0, 1, 2], [np.nan if v is None else v for v in spent], 0.6, color=["tab:red", "tab:green", "tab:gray"])
    right.bar_label(bars, labels=[_usd(v) for v in spent], fontsize=8)
    if spent[2] is None:
        right.text(2, 0.5, "not priced:\nno teacher price", ha="center", va="center", fontsize=9, color="tab:gray",
                   transform=right.get_xaxis_transform())
    right.set(xticks=[0, 1, 2], ylabel="USD", title="USD by source")
    right.set_xticklabels(["teacher\n(spent)", "synthesizer\n(spent)",
                           f"{cost['teacher_samples_saved']} saved samples\nat teacher price"])
    right.set_xlim(-0.6, 2.6)
    right.set_ylim(bottom=0)
    figure.tight_layout()
    return figure


def cost_table(cost: dict) -> list[tuple[str, str]]:
    """(quantity, value) rows shown next to the cost figure."""
    def usd(value):
        return "n/a" if value is None else f"{value:.6g}"

    return [
        ("teacher samples accepted (parsed)", f"{cost['teacher_accepted']} of {cost['teacher_samples']}"),
        ("teacher cost (USD)", usd(cost["teacher_usd"])),
        ("teacher USD per accepted sample", usd(cost["teacher_usd_per_accepted"])),
        ("synthesizer samples accepted (final dataset)", str(cost["synthesizer_accepted"])),
        ("synthesizer cost (USD)", usd(cost["synthesizer_usd"]) + ("" if cost["synthesizer_in_ledger"] else " (not in the ledger)")),
        ("synthesizer USD per accepted sample", usd(cost["synthesizer_usd_per_accepted"])),
        ("teacher samples saved", str(cost["teacher_samples_saved"])),
        ("their cost from the teacher (USD)", usd(cost["teacher_equivalent_usd"])),
        ("saved, less the synthesizer's cost (USD)", usd(cost["saved_usd"])),
    ]


def figures(scores: dict, influence: dict, evaluation: list[dict], cost: dict | None = None) -> dict[str, str]:
    """{title: base64 PNG} of the report's figures."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    out = {}
    for title, values, xlabel in (("Candidate scores by round", scores, "weighted score (eq. 1)"),
                                  ("Influence of the best candidates by round", influence, "influence (cosine with the D_p target)")):
        if not values:
            continue
        figure, axis = plt.subplots(figsize=(6.4, 3.4))
        pooled = [v for vs in values.values() for v in vs]
        edges = np.linspace(min(pooled), max(pooled) + 1e-9, 13)
        for key, vs in values.items():
            axis.hist(vs, bins=edges, alpha=0.55, label=f"round {key} (n={len(vs)})")
        axis.set(xlabel=xlabel, ylabel="candidates", title=title)
        axis.legend()
        out[title] = _png(figure)
        plt.close(figure)
    if evaluation:
        figure, (left, right) = plt.subplots(1, 2, figsize=(9.6, 3.4))
        labels = [r["label"] for r in evaluation]
        positions = np.arange(len(labels))
        base = [r["base_pass@1"] or 0 for r in evaluation]
        plus = [r["plus_pass@1"] if r["plus_pass@1"] is not None else np.nan for r in evaluation]
        # values are printed on the bars: a pass@1 of 0 has no bar to see
        left.bar_label(left.bar(positions - 0.2, base, 0.4, label="base tests"), fmt="%.2f", fontsize=8)
        left.bar_label(left.bar(positions + 0.2, plus, 0.4, label="base + plus tests"), fmt="%.2f", fontsize=8)
        left.set(xticks=positions, ylabel="pass@1", title="pass@1 per model", ylim=(0, 1.1))
        left.set_xticklabels(labels, rotation=20)
        left.legend()
        nll = [r["canonical_nll"] for r in evaluation if r["canonical_nll"] is not None]
        if nll:
            right.bar_label(right.bar(positions, [r["canonical_nll"] or np.nan for r in evaluation], color="tab:purple"),
                            fmt="%.4f", fontsize=8)
            # from 0, so bar heights compare as the values do (a 0.7% difference looks like one);
            # the printed values and the relative difference carry the detail
            right.set_ylim(0, max(nll) * 1.15)
            if len(nll) > 1 and min(nll) > 0:
                right.text(0.5, 0.97, f"largest difference {100 * (max(nll) - min(nll)) / min(nll):.1f}%",
                           transform=right.transAxes, ha="center", va="top", fontsize=8)
        right.set(xticks=positions, ylabel="mean NLL per token", title="NLL of canonical solutions (lower is better)")
        right.set_xticklabels(labels, rotation=20)
        out["Evaluation"] = _png(figure)
        plt.close(figure)
    if cost:
        figure = cost_figure(cost)
        out[COST_TITLE] = _png(figure)
        plt.close(figure)
    return out


def _table(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape('' if v is None else str(v))}</td>" for v in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def pipeline_rows(metrics_dir: str | Path) -> list[tuple[str, str]]:
    """(stage, what it produced) for the stages whose metrics exist."""
    m = Path(metrics_dir)
    rows = []
    if pool := _read_json(m / "pool.json"):
        rows.append(("pool", f"{pool.get('functions_found')} functions -> {pool.get('snippets')} snippets "
                             f"({pool.get('near_duplicates')} near-duplicates, {pool.get('contamination_hits')} contaminated)"))
        if benchmarks := (pool.get("decontamination") or {}).get("benchmarks"):
            rows.append(("decontamination", "; ".join(
                f"{name}: {b.get('hits_snippets')} snippets removed, {len(b.get('hit_tasks', []))} of {b.get('tasks')} tasks hit"
                for name, b in benchmarks.items())))
    if cat := _read_json(m / "categorize.json"):
        rows.append(("categorize", f"{cat.get('seeds')} seeds over {len(cat.get('per_category', {}))} categories"))
    if dist := _read_json(m / "distill.json"):
        rows.append(("distill", f"{dist.get('samples')} teacher samples, parse rate {dist.get('parse_rate')}"))
    for path in sorted((m / "train").glob("*.json")):
        t = _read_json(path)
        rows.append((f"train@{path.stem}", f"{t.get('examples')} examples, {t.get('steps')} steps, loss {t.get('train_loss')}"))
    for path in sorted((m / "sample").glob("*.json")):
        s = _read_json(path)
        rows.append((f"sample@{path.stem}", f"{s.get('candidates')} candidates, parse rate {s.get('parse_rate')}"))
    for path in sorted((m / "select").glob("*.json")):
        s = _read_json(path)
        rows.append((f"select@{path.stem}", f"{s.get('selected', s.get('requested'))} of {s.get('available')} by {s.get('method')}"))
    if syn := _read_json(m / "synthesize.json"):
        rows.append(("synthesize", f"{syn.get('dataset_size')} of {syn.get('samples')} samples kept "
                                   f"(parse rate {syn.get('parse_rate')}, execution {syn.get('execution')}, exec ok {syn.get('exec_ok')})"))
    if st := _read_json(m / "scoder_train.json"):
        phases = ", ".join(f"{k}: " + ("skipped" if v.get("skipped") else f"{v.get('examples')} examples, loss {v.get('train_loss')}")
                           for k, v in st.items() if k.startswith("phase"))
        rows.append(("scoder_train", f"{st.get('model')} ({st.get('method')}); {phases}"))
    if cost := _read_json(m / "cost.json"):
        roles = ", ".join(f"{role} {entry.get('cost_usd')}" for role, entry in sorted((cost.get("by_role") or {}).items()))
        rows.append(("cost", f"total {cost.get('total_cost_usd')} USD ({roles or 'no roles'})"))
    return rows


_STYLE = """body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;font-size:14px}
th{background:#f3f3f3}img{max-width:100%}.note{color:#555;font-size:14px}
.side{display:flex;gap:1em;align-items:flex-start;flex-wrap:wrap}.side img{max-width:640px}"""


def render_html(metrics_dir: str | Path, scores: dict, influence: dict, evaluate: dict | None, title: str = "SCoder run report") -> str:
    evaluation = evaluation_rows(evaluate)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"]
    parts.append("<h2>Pipeline</h2>" + _table(["stage", "result"], pipeline_rows(metrics_dir)))
    if evaluation:
        parts.append("<h2>Evaluation</h2>" + _table(["dataset/model", "pass@1 (base tests)", "pass@1 (plus tests)", "canonical NLL"],
                                                   [(r["label"], r["base_pass@1"], r["plus_pass@1"], r["canonical_nll"]) for r in evaluation]))
        meta = (evaluate or {}).get("meta", {})
        notes = [f"{d}: {b['note']}" for d, b in evaluate.items() if isinstance(b, dict) and b.get("note")]
        notes += [f"{d}: skipped ({b['skipped']})" for d, b in evaluate.items() if isinstance(b, dict) and b.get("skipped")]
        sources = [f"{d}: {b.get('file')} ({b.get('source')}, {b.get('tasks')} tasks)" for d, b in evaluate.items()
                   if isinstance(b, dict) and b.get("source")]
        parts.append("<p class='note'>" + "<br>".join(html.escape(s) for s in [
            f"evalplus {meta.get('evalplus_version')}, decoding {meta.get('decoding', {}).get('mode')} "
            f"(n={meta.get('decoding', {}).get('n')}, max_tokens={meta.get('decoding', {}).get('max_tokens')}), "
            f"{meta.get('cpu_count')} CPUs", *sources, *notes]) + "</p>")
    cost = accepted_cost(metrics_dir)
    for name, png in figures(scores, influence, evaluation, cost).items():
        image = f"<img alt='{html.escape(name)}' src='data:image/png;base64,{png}'>"
        if name == COST_TITLE:  # the numbers beside the figure, and why any is missing
            notes = "".join(f"<p class='note'>{html.escape(n)}</p>" for n in cost["notes"])
            image = f"<div class='side'>{image}<div>{_table(['quantity', 'value'], cost_table(cost))}{notes}</div></div>"
        parts.append(f"<h2>{html.escape(name)}</h2>{image}")
    parts.append("</body></html>")
    return "\n".join(parts)
