"""The final dataset as a Hugging Face dataset folder: parquet shards under `data/` and a
`README.md` dataset card, loadable with `datasets.load_dataset(folder)` and uploadable with
`scoder export --push-to-hub`.

The card is generated, never edited: every number in it is read from the run's metrics files
(pool, categorize, distill, every round's train/sample/score/select, synthesize, cost), every
model and prompt from params and the package, and the provenance (git commit, whether the
tree was dirty, the params hash of the MLflow runs) from the checkout it ran in. The parquet
bytes depend on the dataset rows only, so the same input gives the same shards.

The DVC stage `export` (stages/export.py) and the command `scoder export` call the same
`export_dataset`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

# The params keys the card reads (besides the `export` section), one place for the stage's
# declaration (a test checks they agree) and for `scoder export`.
PARAMS_READ = (
    "pool.source", "pool.decontaminate", "pool.quality",
    "categorize.model", "categorize.quality",
    "distill.teacher",
    "train.model", "train.method", "synthesizers", "rounds",
    "sample.engine.backend",
    "synthesize.synthesizer", "synthesize.engine.backend", "synthesize.guided_problem_tokens",
    "synthesize.guided_problem_lead",
    "score.scorer", "score.mode",
    "reference.model", "reference.method",
    "scoder_train.train.model", "scoder_train.train.method",
)
DATASET = "data/synthesize/dataset.jsonl"
METRICS_DIR = "metrics"
# what the pipeline itself rewrites: changes there do not make the source tree dirty
PIPELINE_OUTPUTS = ("dvc.lock", "data", "metrics", "plots", "reports")
REQUIRED = ("id", "instruction", "response", "code", "snippet_id", "category")  # strings, never null, except:
NULLABLE = ("category",)  # only the distillation seeds are categorized: a round's or the final pool snippet is not
OPTIONAL = {"exec_ok": "bool", "exec_reason": "string"}  # present when synthesize ran the execution check
ROW_GROUP_ROWS = 1000  # small row groups: the Hub's viewer reads a page without the whole shard
PROMPTS = ("synthesis", "scoring")
# the per-benchmark fields of metrics/pool.json `decontamination`, in the card's words and order
BENCHMARK_COLUMNS = {"tasks": "tasks indexed", "hits_snippets": "snippets removed", "hit_tasks": "tasks hit",
                     "files": "files"}


class ExportError(ValueError):
    """A problem the user can fix (bad dataset line, inconsistent metrics, offline push)."""


@dataclass
class ExportConfig:
    """The `export` section: what the dataset card says about the dataset, and the shard size."""

    pretty_name: str = "SCoder synthetic code instructions"
    license: str = "other"  # the Hub's licence id of the dataset
    license_name: str = ""  # with license `other`: the Hub's short name of that licence
    license_notes: str = ""  # the card's Licence section: the sources' and models' terms
    model_licenses: dict[str, str] = field(default_factory=dict)  # model reference in params -> its licence
    task_categories: list[str] = field(default_factory=lambda: ["text-generation"])
    tags: list[str] = field(default_factory=lambda: ["code", "python", "synthetic", "scoder"])
    split: str = "train"
    max_shard_rows: int = 100000

    def __post_init__(self):
        if not self.pretty_name.strip():
            raise ValueError("export.pretty_name is empty")
        if not self.license.strip():
            raise ValueError("export.license is empty (use a Hub licence id, or `other` with license_name)")
        if not re.fullmatch(r"[A-Za-z0-9_]+", self.split):
            raise ValueError(f"export.split must be a plain name (letters, digits, _), got {self.split!r}")
        if self.max_shard_rows < 1:
            raise ValueError(f"export.max_shard_rows must be at least 1, got {self.max_shard_rows}")


# --- the rows ------------------------------------------------------------------------------

def read_dataset(path: str | Path) -> tuple[list[dict], list[str]]:
    """(rows, columns) of the final dataset; a bad line raises ExportError naming file and line."""
    path = Path(path)
    if not path.exists():
        raise ExportError(f"dataset not found: {path} (run the synthesize stage first)")
    rows, first_line = [], {}
    with open(path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}:{line_no}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ExportError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(row, dict):
                raise ExportError(f"{where}: expected a JSON object, got {type(row).__name__}")
            missing = [k for k in REQUIRED if k not in row]
            if missing:
                raise ExportError(f"{where}: missing field(s) {', '.join(missing)}")
            unknown = sorted(set(row) - set(REQUIRED) - set(OPTIONAL))
            if unknown:
                raise ExportError(f"{where}: unexpected field(s) {', '.join(unknown)} (the export writes "
                                  f"{', '.join((*REQUIRED, *OPTIONAL))})")
            for key in REQUIRED:
                if not isinstance(row[key], str) and not (key in NULLABLE and row[key] is None):
                    raise ExportError(f"{where}: field '{key}' must be a string, got {type(row[key]).__name__}")
            if row.get("exec_ok") is not None and not isinstance(row["exec_ok"], bool):
                raise ExportError(f"{where}: field 'exec_ok' must be true, false or null, got {row['exec_ok']!r}")
            if row.get("exec_reason") is not None and not isinstance(row["exec_reason"], str):
                raise ExportError(f"{where}: field 'exec_reason' must be a string or null")
            if row["id"] in first_line:
                raise ExportError(f"{where}: duplicate id {row['id']!r} (first on line {first_line[row['id']]})")
            first_line[row["id"]] = line_no
            rows.append(row)
    if not rows:
        raise ExportError(f"{path}: the dataset has no rows")
    optional = [k for k in OPTIONAL if any(k in row for row in rows)]
    return rows, [*REQUIRED, *optional]


def _features(columns: list[str]) -> list[dict]:
    return [{"name": c, "dtype": OPTIONAL.get(c, "string")} for c in columns]


def write_shards(rows: list[dict], columns: list[str], folder: Path, config: ExportConfig) -> tuple[list[dict], int]:
    """Parquet shards `data/<split>-0000i-of-0000n.parquet` (zstd, fixed row groups; the bytes
    depend on the rows only). Returns ([{path, rows, bytes, sha256}], the rows' Arrow size)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {"string": pa.string(), "bool": pa.bool_()}
    schema = pa.schema([pa.field(f["name"], types[f["dtype"]], nullable=f["name"] not in REQUIRED or f["name"] in NULLABLE)
                        for f in _features(columns)])
    # the `datasets` library reads its features from this key (the Hub's own parquet exports carry it)
    hf_features = {f["name"]: {"dtype": f["dtype"], "_type": "Value"} for f in _features(columns)}
    schema = schema.with_metadata({"huggingface": json.dumps({"info": {"features": hf_features}}, sort_keys=True)})
    count = math.ceil(len(rows) / config.max_shard_rows)
    (folder / "data").mkdir(parents=True, exist_ok=True)
    shards, arrow_bytes = [], 0
    for index in range(count):
        part = rows[index * config.max_shard_rows : (index + 1) * config.max_shard_rows]
        table = pa.Table.from_pydict({c: [row.get(c) for row in part] for c in columns}, schema=schema)
        arrow_bytes += table.nbytes
        relative = f"data/{config.split}-{index:05d}-of-{count:05d}.parquet"
        pq.write_table(table, folder / relative, compression="zstd", row_group_size=ROW_GROUP_ROWS)
        data = (folder / relative).read_bytes()
        shards.append({"path": relative, "rows": len(part), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    return shards, arrow_bytes


# --- what the card is made of --------------------------------------------------------------

def read_params(get: Callable[[str], Any]) -> dict[str, Any]:
    """The keys of PARAMS_READ through `get` (the stage's guarded params, or a params file)."""
    return {key: get(key) for key in PARAMS_READ}


def params_getter(params: dict) -> Callable[[str], Any]:
    from scoder.core.stage import lookup

    def get(dotted: str) -> Any:
        try:
            return lookup(params, dotted)
        except KeyError:
            raise ExportError(f"params has no '{dotted}', which the dataset card reads") from None

    return get


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def read_metrics(metrics_dir: str | Path) -> dict[str, Any]:
    """Every metrics file the card reads ({} where a file is missing; rounds by key)."""
    m = Path(metrics_dir)

    def folder(name: str) -> dict[str, dict]:
        files = sorted((m / name).glob("*.json"), key=lambda p: (len(p.stem), p.stem)) if (m / name).is_dir() else []
        return {p.stem: _read_json(p) for p in files}

    out = {name: _read_json(m / f"{name}.json") for name in ("pool", "categorize", "distill", "synthesize", "cost")}
    out.update({name: folder(name) for name in ("train", "sample", "score", "select")})
    return out


def provenance(params_file: str | Path, written: Path | None = None) -> dict[str, Any]:
    """Git commit and dirty state of the checkout (the working directory's), and the params
    hash: the same as the MLflow runs' `scoder.params_hash` and `scoder.pipeline_id` tags.
    Dirty means a changed or new (not ignored) file outside the pipeline's outputs and the
    folder being `written`."""
    from scoder.core.tracking import _file_hash, git_commit, repo_root

    commit = git_commit()
    params_hash = _file_hash(Path(params_file))
    dirty: list[str] | None = None
    if commit != "unknown":
        root = repo_root().resolve()
        skip = list(PIPELINE_OUTPUTS)
        if written is not None and written.resolve().is_relative_to(root):
            skip.append(written.resolve().relative_to(root).as_posix())
        excluded = [f":(top,exclude){p}" for p in skip]
        out = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=normal", "--",
                              ":(top)", *excluded], capture_output=True, text=True)
        dirty = sorted(line[3:] for line in out.stdout.splitlines() if line.strip()) if out.returncode == 0 else None
    return {
        "git_commit": commit,
        "git_dirty": None if dirty is None else bool(dirty),
        "dirty_files": dirty or [],
        "params_file": Path(params_file).name,
        "params_hash": params_hash,
        "pipeline_id": os.environ.get("SCODER_PIPELINE_ID") or f"{commit[:12]}-{params_hash}",
    }


def prompt_files() -> list[dict]:
    """The synthesis and scoring templates as shipped in the package: path, sha256, text."""
    from importlib.resources import files

    from scoder.bootstrap.prompts import load_prompt

    out = []
    for name in PROMPTS:
        text = load_prompt(name)
        package = files("scoder.bootstrap.prompts").joinpath(f"{name}.txt")
        out.append({"name": name, "path": f"src/scoder/bootstrap/prompts/{name}.txt", "exists": package.is_file(),
                    "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(), "text": text})
    return out


# --- the card ------------------------------------------------------------------------------

def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _rate(part: Any, whole: Any) -> str:
    if part is None or not whole:
        return "-"
    return f"{100 * part / whole:.1f}% ({part} of {whole})"


def _size_category(n: int) -> str:
    for bound, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                         (10_000_000, "1M<n<10M")):
        if n < bound:
            return label
    return "10M<n<100M"


def _front_matter(config: ExportConfig, columns: list[str], shards: list[dict], arrow_bytes: int) -> str:
    rows = sum(s["rows"] for s in shards)
    meta: dict[str, Any] = {"license": config.license}
    if config.license_name:
        meta["license_name"] = config.license_name
    meta.update({
        "pretty_name": config.pretty_name,
        "language": ["en"],
        "task_categories": list(config.task_categories),
        "tags": list(config.tags),
        "size_categories": [_size_category(rows)],
        "configs": [{"config_name": "default",
                     "data_files": [{"split": config.split, "path": f"data/{config.split}-*"}]}],
        "dataset_info": {
            "features": _features(columns),
            "splits": [{"name": config.split, "num_bytes": arrow_bytes, "num_examples": rows}],
            "download_size": sum(s["bytes"] for s in shards),
            "dataset_size": arrow_bytes,
        },
    })
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=1000) + "---\n"


def _model(ref: Any) -> str:
    return f"`{ref}`" if ref else "-"


def _llm(block: Any) -> tuple[str, str]:
    """(model, backend) of an engine block as params spell it (endpoint and adapter included)."""
    block = block if isinstance(block, dict) else {}
    backend = block.get("backend", "transformers")
    if backend == "openai" and block.get("endpoint"):
        backend = f"openai @ {block['endpoint']}"
    model = _model(block.get("model"))
    if block.get("adapter"):
        model += f" + adapter `{block['adapter']}`"
    return model, backend


def _licence(config: ExportConfig, ref: Any) -> str:
    return config.model_licenses.get(str(ref), "not recorded: see the model's own card") if ref else "-"


def models_section(p: dict, metrics: dict, config: ExportConfig) -> str:
    train, rounds, synthesizers = metrics["train"], p["rounds"] or {}, p["synthesizers"] or {}
    teacher_model, teacher_backend = _llm(p["distill.teacher"])
    teacher_ref = (p["distill.teacher"] or {}).get("model")
    scorer_model, scorer_backend = _llm(p["score.scorer"])
    scorer_ref = (p["score.scorer"] or {}).get("model")
    final = str(p["synthesize.synthesizer"])
    distill = metrics["distill"]
    price = distill.get("price") or {}
    if price:
        priced = (f", priced as {price.get('row')}" + (f" ({price['tier']})" if price.get("tier") else "")
                  + f": {price.get('input_per_1m')} / {price.get('output_per_1m')} USD per 1M input / output tokens")
    else:
        priced = ""
    rows = [
        ["teacher", teacher_model, teacher_backend,
         f"writes D_p: problem + solution for each distillation seed ({distill.get('samples', '-')} samples{priced})",
         _licence(config, teacher_ref)],
        ["synthesizer (base model)", _model(p["train.model"]),
         p["sample.engine.backend"] if p["sample.engine.backend"] == p["synthesize.engine.backend"] else
         f"{p['sample.engine.backend']} (rounds), {p['synthesize.engine.backend']} (final synthesis)",
         f"{p['train.method']} fine-tuned once per synthesizer key below; synthesizer {final} wrote this dataset",
         _licence(config, p["train.model"])],
        ["scorer", scorer_model, scorer_backend, f"10-aspect scores of each round's candidates (mode {p['score.mode']})",
         _licence(config, scorer_ref)],
        ["reference (influence)", _model(p["reference.model"]), "transformers",
         f"{p['reference.method']} fine-tuned on D_p; its gradients rank each round's candidates",
         _licence(config, p["reference.model"])],
        ["embedding (categorize)", _model(p["categorize.model"]), "sentence-transformers",
         "task category of every pool snippet", _licence(config, p["categorize.model"])],
    ]
    for where, block in (("categorize", p["categorize.quality"]), ("pool", p["pool.quality"])):
        block = block or {}
        if block.get("method", "none") != "none":
            rows.append([f"quality classifier ({where})", _model(block.get("model")), "transformers",
                         f"P(yes) of a quality question, kept at >= {block.get('threshold')}",
                         _licence(config, block.get("model"))])
    rows.append(["code model (downstream)", _model(p["scoder_train.train.model"]), "transformers",
                 f"{p['scoder_train.train.method']} fine-tuned on this dataset by `scoder_train`; it made none of it",
                 _licence(config, p["scoder_train.train.model"])])
    adapters = []
    for key, item in synthesizers.items():
        t = train.get(str(key), {})
        made_by = ("the teacher's D_p" if str(key) == "0" else
                   f"round {key}'s selected candidates" if str(key) in rounds else "")
        adapters.append([f"synthesizer {key}" + (" (final)" if str(key) == final else ""),
                         f"`{(item or {}).get('data')}`" + (f" ({made_by})" if made_by else ""),
                         t.get("examples"), t.get("steps"), t.get("checkpoints"), t.get("train_loss")])
    round_rows = [[key, (spec or {}).get("previous"), (spec or {}).get("snippets"), (spec or {}).get("select")]
                  for key, spec in rounds.items()]
    return "\n\n".join([
        "## Models\n\n" + _table(["role", "model", "backend", "what it did", "licence"], rows),
        "Synthesizers: the base model above with one adapter (or full fine-tune) each, from `metrics/train/<key>.json`.\n\n"
        + _table(["synthesizer", "trained on", "examples", "steps", "checkpoints", "train loss"], adapters),
        "Bootstrap rounds (`params.yaml` `rounds`): each samples new pool snippets with the previous synthesizer, "
        "scores the candidates, weighs the best by influence and keeps `select` of them.\n\n"
        + _table(["round", "sampled by synthesizer", "snippets", "selected"], round_rows),
    ])


def pool_section(p: dict, metrics: dict) -> str:
    pool, cat = metrics["pool"], metrics["categorize"]
    rows = [["files read", pool.get("files_seen")], ["functions found", pool.get("functions_found")],
            ["after the filters", pool.get("after_filter")], ["after exact dedup", pool.get("after_exact_dedup")],
            ["after near dedup (MinHash)", pool.get("after_near_dedup")],
            ["after decontamination", pool.get("after_decontamination")],
            ["rejected by the quality classifier", pool.get("quality_rejected")],
            ["snippets in the pool", pool.get("snippets")]]
    rejected = ", ".join(f"{k} {v}" for k, v in sorted((pool.get("rejected") or {}).items())) or "none"
    text = (f"## Source pool\n\nSnippets are documented functions from the pool source `{p['pool.source']}` "
            f"(`pool.source`), filtered, deduplicated and decontaminated by the `pool` stage "
            f"(`metrics/pool.json`).\n\n" + _table(["step", "snippets"], rows)
            + f"\n\nRejected by the filters: {rejected}.")
    if cat:
        text += (f" The `categorize` stage gave every snippet one of {len(cat.get('per_category') or {})} task categories "
                 f"and picked {cat.get('seeds')} distillation seeds.")
    return text


def _benchmarks(block: Any) -> tuple[list[str], dict[str, dict]]:
    """(top-level notes, {benchmark: fields}) of a per-benchmark decontamination block, whatever
    its nesting: a `benchmarks` mapping or list, or benchmarks as the block's own mappings."""
    notes, found = [], {}
    if not isinstance(block, dict):
        return notes, found
    inner = block.get("benchmarks", block)
    if isinstance(inner, list):
        inner = {str(b.get("name", i)): b for i, b in enumerate(inner) if isinstance(b, dict)}
    for key, value in (inner.items() if isinstance(inner, dict) else []):
        if isinstance(value, dict):
            found[str(key)] = value
    for key, value in block.items():
        if key != "benchmarks" and not isinstance(value, (dict, list)):
            notes.append(f"{key}: {value}")
    return notes, found


def decontamination_section(p: dict, metrics: dict) -> str:
    pool = metrics["pool"]
    head = "## Decontamination\n\n"
    notes, benchmarks = _benchmarks(pool.get("decontamination"))
    if benchmarks:
        found = {k for fields in benchmarks.values() for k, v in fields.items() if not isinstance(v, dict)}
        columns = [c for c in BENCHMARK_COLUMNS if c in found] + sorted(found - set(BENCHMARK_COLUMNS))
        rows = [[name, *[_listed(fields.get(c)) for c in columns]] for name, fields in benchmarks.items()]
        text = (head + "Snippets sharing an n-gram with a benchmark task were removed (`pool.decontaminate`). "
                "Per benchmark, from `metrics/pool.json` (`decontamination`):\n\n"
                + _table(["benchmark", *[BENCHMARK_COLUMNS.get(c, c) for c in columns]], rows))
        if notes:
            text += "\n\n" + "; ".join(notes) + "."
        return text
    config = p["pool.decontaminate"] or {}
    listed = config.get("benchmarks")
    names = ([str(b) for b in listed] if isinstance(listed, list) else [f"{listed} (pool.decontaminate.benchmarks)"]
             if listed else ["HumanEval"] if config.get("humaneval") else [])
    names += [str(f.get("name") or Path(str(f.get("path"))).name) if isinstance(f, dict) else Path(str(f)).name
              for f in config.get("extra_files") or []]
    ids = pool.get("contaminated_benchmark_ids") or []
    return (head + f"Snippets sharing a {config.get('ngram')}-gram with a benchmark prompt or solution were removed "
            f"(`pool.decontaminate`). Benchmarks: {', '.join(names) or 'none'}; "
            f"{pool.get('benchmark_tasks_indexed', '-')} benchmark tasks indexed; "
            f"{pool.get('contamination_hits', '-')} snippets removed as contaminated; "
            f"benchmark tasks hit: {', '.join(ids) if ids else 'none'} (`metrics/pool.json`).")


def _listed(value: Any, most: int = 20) -> Any:
    """A list as its first `most` items (benchmark ids hit can be many), anything else as is."""
    if not isinstance(value, list):
        return value
    return ", ".join(map(str, value[:most])) + (f" ... ({len(value)} in all)" if len(value) > most else "") if value else "none"


def rates_section(metrics: dict) -> str:
    d, s = metrics["distill"], metrics["synthesize"]
    rows = [["distill (teacher)", d.get("samples"), _rate(d.get("parse_ok"), d.get("samples")), "-", "-"]]
    for key in sorted(set(metrics["sample"]) | set(metrics["score"]), key=lambda k: (len(k), k)):
        sample, score, select = metrics["sample"].get(key, {}), metrics["score"].get(key, {}), metrics["select"].get(key, {})
        rows.append([f"round {key}: sample", sample.get("candidates"), _rate(sample.get("parse_ok"), sample.get("candidates")),
                     "-", "-"])
        rows.append([f"round {key}: score", score.get("scored"),
                     f"scorer output {_rate(score.get('score_parse_ok'), score.get('scored'))}",
                     _rate(score.get("exec_ok"), score.get("candidates")) + f" [{score.get('isolation', '-')}]"
                     if score.get("execution") not in (None, "off") else "off",
                     f"{select.get('selected')} of {select.get('available')} by {select.get('method')}" if select else "-"])
    executed = s.get("exec_ok") if s.get("execution") not in (None, "off") else None
    rows.append(["final synthesis", s.get("samples"), _rate(s.get("parse_ok"), s.get("samples")),
                 (_rate(executed, s.get("parse_ok")) + f" [{s.get('isolation', '-')}]") if executed is not None else "off",
                 f"{s.get('dataset_size')} kept (execution {s.get('execution')})"])
    rejected = ", ".join(f"{k} {v}" for k, v in sorted((s.get("rejected") or {}).items())) or "none"
    return ("## Parse and execution rates\n\nFrom `metrics/distill.json`, `metrics/sample/`, `metrics/score/`, "
            "`metrics/select/` and `metrics/synthesize.json`. Executed: the share of parsed samples whose code ran in "
            "the sandbox (isolation level in brackets).\n\n"
            + _table(["step", "samples", "parsed", "executed", "kept"], rows)
            + f"\n\nFinal synthesis rejections: {rejected}.")


def cost_section(metrics: dict, metrics_dir: Path) -> str:
    from scoder.evaluation.summary import accepted_cost

    cost = metrics["cost"]
    if not cost:
        return "## Cost\n\nNo cost ledger (`metrics/cost.json`) was found."
    stages = cost.get("stages") or {}
    rows = []
    for role, entry in sorted((cost.get("by_role") or {}).items()):
        used = sorted({f"{e.get('model')} ({e.get('backend')})" for e in stages.values() if e.get("role") == role})
        rows.append([role, ", ".join(used) or "-", entry.get("samples"), entry.get("tokens_in"), entry.get("tokens_out"),
                     entry.get("cost_usd")])
    text = ("## Cost\n\nEstimated model cost by role, from the cost ledger `metrics/cost.json`: each paid stage's "
            "token counts at the price it recorded (a local stand-in can be priced as the model it stands in for).\n\n"
            + _table(["role", "models", "calls", "tokens in", "tokens out", "USD"], rows)
            + f"\n\nTotal: {cost.get('total_cost_usd')} USD.")
    accepted = accepted_cost(metrics_dir)
    if accepted:
        def usd(value):
            return "n/a (see the note)" if value is None else value

        text += ("\n\n" + _table(["per accepted sample", "USD"], [
            [f"teacher ({accepted['teacher_accepted']} of {accepted['teacher_samples']} accepted)",
             usd(accepted["teacher_usd_per_accepted"])],
            [f"synthesizer ({accepted['synthesizer_accepted']} accepted)", usd(accepted["synthesizer_usd_per_accepted"])],
            [f"the {accepted['teacher_samples_saved']} samples of this dataset at the teacher's price",
             usd(accepted["teacher_equivalent_usd"])]]))
        if accepted["notes"]:
            text += "\n\n" + " ".join(f"Note: {n}." for n in accepted["notes"])
    return text


def prompts_section(p: dict, prompts: list[dict]) -> str:
    parts = ["## Prompts\n\nThe templates as the package ships them (SCoder appendix D); the synthesis prompt is what "
             "the teacher and every synthesizer answered, the scoring prompt what the scorer answered.\n",
             _table(["prompt", "package file", "sha256"], [[x["name"], f"`{x['path']}`", f"`{x['sha256']}`"] for x in prompts])]
    if int(p["synthesize.guided_problem_tokens"] or 0) > 0:
        parts.append(f"\nThe final synthesis was template-guided (`synthesize.guided_problem_tokens` "
                     f"{p['synthesize.guided_problem_tokens']}): each answer was prefilled with the problem header and "
                     f"the words \"{p['synthesize.guided_problem_lead']}\", so every instruction starts with them.")
    for x in prompts:
        fence = "`" * max(3, 1 + max((len(r) for r in re.findall(r"`+", x["text"])), default=0))
        parts.append(f"\n<details><summary>{x['name']} prompt</summary>\n\n{fence}text\n{x['text'].rstrip()}\n{fence}\n\n"
                     "</details>")
    return "\n".join(parts)


def provenance_section(prov: dict) -> str:
    if prov["git_dirty"] is None:
        state = "unknown (not a git checkout)"
    elif prov["git_dirty"]:
        listed = ", ".join(f"`{f}`" for f in prov["dirty_files"][:10])
        more = f" and {len(prov['dirty_files']) - 10} more" if len(prov["dirty_files"]) > 10 else ""
        state = (f"**DIRTY**: {len(prov['dirty_files'])} file(s) differ from the commit outside the pipeline's outputs "
                 f"({listed}{more}); the commit alone does not reproduce this dataset")
    else:
        state = "clean (outside the pipeline's outputs)"
    return ("## Provenance\n\n" + _table(["", ""], [
        ["git commit", f"`{prov['git_commit']}`"], ["working tree", state],
        [f"params hash ({prov['params_file']})", f"`{prov['params_hash']}`"],
        ["MLflow pipeline id", f"`{prov['pipeline_id']}`"]])
        + "\n\nThe params hash and pipeline id are the tags `scoder.params_hash` and `scoder.pipeline_id` of the "
        "stages' MLflow runs; `scoder provenance` maps each metrics file to the run that wrote it.")


def licence_section(config: ExportConfig) -> str:
    text = f"## Licence\n\nDataset licence: `{config.license}`" + (f" ({config.license_name})" if config.license_name else "") + "."
    if config.license_notes.strip():
        text += "\n\n" + config.license_notes.strip()
    if config.model_licenses:
        text += "\n\n" + _table(["model", "licence"], [[f"`{k}`", v] for k, v in sorted(config.model_licenses.items())])
    return text


def render_card(config: ExportConfig, p: dict, metrics: dict, metrics_dir: Path, columns: list[str], shards: list[dict],
                arrow_bytes: int, categories: dict[str, int], prov: dict, prompts: list[dict]) -> str:
    rows = sum(s["rows"] for s in shards)
    fields = {"id": "stable id of the sample", "instruction": "the problem (the synthesizer's [Problem Description])",
              "response": "the solution (the synthesizer's [Solution], code and explanation)",
              "code": "the solution's code", "snippet_id": "id of the pool snippet that inspired it",
              "category": "its task category (categorize; null for a snippet that was not a distillation seed)", "exec_ok": "whether the code ran in the sandbox",
              "exec_reason": "the sandbox verdict"}
    intro = (f"# {config.pretty_name}\n\n{rows} Python instruction-response pairs written by a fine-tuned synthesizer "
             "with the SCoder pipeline (bootstrapped from a teacher's distilled samples, selected by multi-aspect "
             "scores and influence), exported by `scoder export`. Every number on this card is read from the run's "
             "metrics files.\n\n"
             "```python\nfrom datasets import load_dataset\n\nds = load_dataset(\"<this folder or repo>\")\n```\n\n"
             "## Fields\n\n" + _table(["column", "type", "meaning"], [[f"`{c}`", OPTIONAL.get(c, "string"), fields[c]]
                                                                      for c in columns])
             + "\n\nShards: " + ", ".join(f"`{s['path']}` ({s['rows']} rows)" for s in shards) + ".\n\n"
             + "Rows per category: " + ", ".join(f"{k} {v}" for k, v in sorted(categories.items())) + ".")
    body = [intro, pool_section(p, metrics), models_section(p, metrics, config), prompts_section(p, prompts),
            rates_section(metrics), decontamination_section(p, metrics), cost_section(metrics, metrics_dir),
            provenance_section(prov), licence_section(config)]
    return _front_matter(config, columns, shards, arrow_bytes) + "\n" + "\n\n".join(body) + "\n"


# --- the one entry point -------------------------------------------------------------------

def export_dataset(dataset: str | Path, metrics_dir: str | Path, out_dir: str | Path, config: ExportConfig,
                   params: dict[str, Any], params_file: str | Path) -> dict:
    """Write the dataset folder into `out_dir` (which the caller made empty): the parquet
    shards and README.md. `params` holds the PARAMS_READ keys. Returns the stage's metrics."""
    out_dir, metrics_dir = Path(out_dir), Path(metrics_dir)
    rows, columns = read_dataset(dataset)
    metrics = read_metrics(metrics_dir)
    recorded = metrics["synthesize"].get("dataset_size")
    if recorded is not None and recorded != len(rows):
        raise ExportError(f"{dataset} has {len(rows)} rows but {metrics_dir / 'synthesize.json'} records dataset_size "
                          f"{recorded}: the metrics come from another run (run `dvc repro synthesize`)")
    missing = [k for k in PARAMS_READ if k not in params]
    if missing:
        raise ExportError(f"params lack {missing}, which the dataset card reads")
    shards, arrow_bytes = write_shards(rows, columns, out_dir, config)
    categories: dict[str, int] = {}
    for row in rows:
        label = row["category"] if row["category"] is not None else "none (not a distillation seed)"
        categories[label] = categories.get(label, 0) + 1
    prov = provenance(params_file, out_dir)
    card = render_card(config, params, metrics, metrics_dir, columns, shards, arrow_bytes, categories, prov, prompt_files())
    (out_dir / "README.md").write_text(card, encoding="utf-8")
    return {"rows": len(rows), "columns": columns, "shards": len(shards),
            "parquet_bytes": sum(s["bytes"] for s in shards),
            "parquet_sha256": {s["path"]: s["sha256"] for s in shards},
            "card_sha256": hashlib.sha256(card.encode("utf-8")).hexdigest(),
            "git_commit": prov["git_commit"], "git_dirty": prov["git_dirty"], "params_hash": prov["params_hash"]}


def export_folder(dataset: str | Path, metrics_dir: str | Path, out: str | Path, config: ExportConfig,
                  params: dict[str, Any], params_file: str | Path) -> dict:
    """`export_dataset` into `<out>.partial`, which replaces `out` only when complete (what
    the stage runner does for the stage's folder output)."""
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        result = export_dataset(dataset, metrics_dir, partial, config, params, params_file)  # card: clean of `partial`
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)
    return result


def _offline() -> bool:
    from huggingface_hub import constants

    flag = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return flag.strip().upper() in ("1", "ON", "YES", "TRUE") or constants.is_offline_mode()


def push_to_hub(folder: str | Path, repo_id: str, private: bool = False) -> str:
    """Create the dataset repo (if needed) and upload the folder; returns the commit URL. Any
    failure (offline, not logged in, no network, no permission) is an ExportError saying so."""
    folder = Path(folder)
    if not (folder / "README.md").exists():
        raise ExportError(f"{folder} is not an exported dataset folder (no README.md): run `scoder export` first")
    if _offline():
        raise ExportError(f"cannot push to the Hub repo '{repo_id}': offline mode is on (HF_HUB_OFFLINE=1). The dataset "
                          f"folder {folder} is written; unset HF_HUB_OFFLINE, log in (`hf auth login` or HF_TOKEN) "
                          "and push again")
    from huggingface_hub import HfApi

    api = HfApi()
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        commit = api.upload_folder(repo_id=repo_id, repo_type="dataset", folder_path=str(folder),
                                   commit_message="scoder export")
    except Exception as exc:  # the hub client's errors (HTTP, auth, connection) all end here, reworded
        raise ExportError(f"push to the Hub repo '{repo_id}' failed ({type(exc).__name__}: {exc}); the dataset "
                          f"folder {folder} is written: check the network, your login (`hf auth login` or HF_TOKEN) "
                          "and your rights on the repo") from None
    return str(getattr(commit, "commit_url", commit))
