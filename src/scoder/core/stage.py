"""The stage contract: every DVC stage is declared once, as a `Stage` in its script under
`stages/`, and run by the one runner here.

A declaration names the stage, the params section parsed into its config class, the further
params keys it reads, its inputs, outputs and metrics file. From the declarations
`scoder pipeline generate` writes `dvc.yaml` (deps = the script's import closure inside the
package plus its inputs; params = exactly the declared keys) and the README's stage table;
`scoder params check` knows every section's config class from them.

The runner does what every stage needs, in one place: thread settings before any numeric
library is imported, logging, command-line paths, params parsing and validation, a guarded
view of params (reading an undeclared key is an error, and so is declaring a key the stage
never reads), one MLflow run logging exactly the declared params, atomic folder outputs,
the metrics JSON and its MLflow artifact, and orphan-run cleanup (in `core.tracking`).

A stage that names a launcher param (`Stage(..., launcher="train.launcher")`) is re-executed
by the runner under that command prefix (`torchrun --nproc_per_node 8`, `accelerate launch
...`) when the param is set, so `dvc exp run -S train.launcher=...` moves it to several
processes without editing dvc.yaml; the launched processes run the stage as a by-hand launch
would, and the process DVC started only waits for them.

Nothing here imports torch, numpy or the library at module level: a stage script's top level
is only its declaration, so importing it (to generate dvc.yaml) is cheap and sets nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import logging
import os
import re
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

log = logging.getLogger("scoder.stage")

TEMPLATE = re.compile(r"\$\{([^}]+)\}")

# set by the runner for the processes it starts under a stage's launcher: they run the stage
# themselves instead of launching again (RANK alone would not do: a launcher such as
# `numactl ...` sets none, and a one-process `accelerate launch` need not either)
LAUNCHED = "SCODER_LAUNCHED"


@dataclass(frozen=True)
class Input:
    """A file or folder the stage reads (a DVC dep)."""

    name: str
    path: str
    help: str = ""


@dataclass(frozen=True)
class Output:
    """A file or folder the stage writes (a DVC out). Folders are written atomically by the
    runner (the stage fills a scratch folder that replaces the old one on success), except
    `persist` ones, which survive a kill so the stage can resume inside them. `cache: false`
    keeps small files (per-stage metrics, reports) in git rather than in the DVC cache."""

    name: str
    path: str
    folder: bool = False
    persist: bool = False
    cache: bool = True
    help: str = ""


@dataclass(frozen=True)
class Option:
    """A command-line option that is not a path (e.g. `--shard` of the feature stages)."""

    name: str
    default: str
    help: str = ""
    # the value a run under the stage's launcher gets when the command line gives none
    # (`--shard auto`: each launched process takes its share from the launcher's rank)
    launched: str | None = None


@dataclass(frozen=True)
class Stage:
    """One DVC stage. Conventions keep declarations short: the params section is the stage's
    name (when it has a config class), the metrics file is metrics/<name>.json (a foreach
    stage: metrics/<name>/<key>.json), and the package is the config class's."""

    name: str
    summary: str  # one line: what the stage makes (the README table)
    config: str | None = None  # "module:Class" its params section is parsed into
    section: str | None = None  # params section parsed into `config` (default: the name)
    params: tuple[str, ...] = ()  # further params keys it reads (dotted; may hold ${key})
    inputs: tuple[Input, ...] = ()
    outputs: tuple[Output, ...] = ()
    metrics: str | None = "auto"  # the per-stage metrics JSON written from the stage function's result
    dvc_metrics: bool = False  # list the metrics file under `metrics:` (only the summary is)
    options: tuple[Option, ...] = ()
    foreach: str | None = None  # params key unrolled with DVC foreach (${key}, ${item.*} in paths)
    paper: str = ""  # which package's method it runs (README table; default: the config's)
    in_pipeline: bool = True  # False: optional stage, run by hand (not in dvc.yaml)
    # dotted params key holding a command prefix the runner re-executes the stage under
    # (torchrun / accelerate launch; "" in params = this process); inside the declared params
    launcher: str | None = None
    script: str = ""  # set by `load_stages`: stages/<file>.py

    def __post_init__(self):
        if self.config and self.section is None:
            object.__setattr__(self, "section", self.name)
        if self.metrics == "auto":
            object.__setattr__(self, "metrics", f"metrics/{self.name}/${{key}}.json" if self.foreach
                               else f"metrics/{self.name}.json")
        if not self.paper:
            parts = (self.config or "").split(":")[0].split(".")
            object.__setattr__(self, "paper", parts[1] if len(parts) > 2 else "core")
        if self.launcher and not any(self.launcher == key or self.launcher.startswith(key + ".")
                                     for key in self.declared_params()):
            # DVC must rerun the stage when its launcher changes, and the guarded params must let it be read
            raise ValueError(f"stage '{self.name}': launcher param '{self.launcher}' is not among its declared "
                             f"params ({', '.join(self.declared_params()) or 'none'})")

    def declared_params(self) -> tuple[str, ...]:
        return ((self.section,) if self.section else ()) + tuple(self.params)

    def config_class(self):
        if not self.config:
            return None
        module, name = self.config.split(":")
        return getattr(importlib.import_module(module), name)


class UndeclaredParam(KeyError):
    pass


def lookup(params: dict[str, Any], dotted: str) -> Any:
    """params[a][b][c] for 'a.b.c'; KeyError naming the key where one is missing."""
    value: Any = params
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(f"params has no '{dotted}'")
        value = value[part]
    return value


def _has(params: dict[str, Any], dotted: str) -> bool:
    try:
        lookup(params, dotted)
    except KeyError:
        return False
    return True


class GuardedParams:
    """The params a stage may read: exactly its declared keys (with ${key} filled in)."""

    def __init__(self, stage: str, params: dict[str, Any], declared: list[str]):
        self._stage = stage
        self._params = params
        self.declared = declared
        self.read: set[str] = set()

    def get(self, dotted: str) -> Any:
        for key in self.declared:
            if dotted == key or dotted.startswith(key + "."):
                self.read.add(key)
                try:
                    return lookup(self._params, dotted)
                except KeyError:
                    raise KeyError(f"stage '{self._stage}' reads params '{dotted}', which the params file does not "
                                   "have") from None
        raise UndeclaredParam(
            f"stage '{self._stage}' reads params '{dotted}', which its declaration does not list "
            f"(declared: {', '.join(self.declared) or 'none'}); add it to the Stage's params and run "
            "`scoder pipeline generate`")

    def values(self) -> dict[str, Any]:
        """The declared keys and their values (what the MLflow run logs)."""
        missing = [key for key in self.declared if not _has(self._params, key)]
        if missing:
            raise KeyError(f"stage '{self._stage}' declares params {missing}, which the params file does not have")
        return {key: lookup(self._params, key) for key in self.declared}


@dataclass
class StageContext:
    stage: Stage
    key: str | None  # the foreach item's key (round or synthesizer), else None
    name: str  # the run's name: stage, or stage@key
    config: Any
    params: GuardedParams
    paths: dict[str, Path]
    options: dict[str, str]
    run: Any = None  # core.tracking.StageRun (log extra metrics / artifacts / tags)
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("stage"))
    tags: dict[str, str] = field(default_factory=dict)
    partial: bool = False  # set by a stage that did only its share (one feature shard): no metrics yet
    params_file: Path = Path("params.yaml")  # the params file the stage was run with

    def param(self, dotted: str) -> Any:
        return self.params.get(dotted)

    def path(self, name: str) -> Path:
        return self.paths[name]

    def metrics_dir(self, anchor: str, others: tuple[str, ...] = ()) -> Path:
        """The folder holding the metrics files a stage reads together (the report, the dataset
        card): the parent of input `anchor`; every other input except `others` must lie in it
        (as <name>.json or <name>/), since the stage reads them from there."""
        folder = self.path(anchor).parent
        elsewhere = [i.name for i in self.stage.inputs if i.name not in others
                     and self.path(i.name).parent not in (folder, folder / i.name)]
        if elsewhere:
            raise SystemExit(f"{self.name}: inputs {elsewhere} are not under {folder}, where the stage reads them")
        return folder


def is_main_process() -> bool:
    """False in the non-main processes of `accelerate launch` / `torchrun` (RANK > 0)."""
    return int(os.environ.get("RANK", "0")) == 0


def set_threads() -> int:
    """Thread settings, before numpy or torch is imported: an explicit count (SCODER_THREADS,
    else the CPUs this process may use) for every OpenMP/BLAS pool, and idle threads that sleep
    instead of spinning. The count decides floating-point reduction order, so it is tagged on
    the stage's MLflow run."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    asked = os.environ.get("SCODER_THREADS")
    threads = int(asked or usable)
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        if asked:  # the project's own setting wins over an exported one
            os.environ[variable] = str(threads)
        else:
            os.environ.setdefault(variable, str(threads))
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    return int(os.environ["OMP_NUM_THREADS"])


def setup_logging() -> None:
    logging.basicConfig(
        level=os.environ.get("SCODER_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("httpx", "urllib3", "alembic", "mlflow", "sentence_transformers", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def option_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def parser_for(stage: Stage) -> argparse.ArgumentParser:
    """Paths come from the command line (dvc.yaml passes every one), defaulting to the
    declared ones for a by-hand run of a stage without foreach."""
    parser = argparse.ArgumentParser(prog=stage.script or stage.name, description=stage.summary)
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    if stage.foreach:
        parser.add_argument("--key", required=True, help=f"the item's key in params '{stage.foreach}'")
    for item in (*stage.inputs, *stage.outputs):
        templated = bool(TEMPLATE.search(item.path))
        parser.add_argument(option_name(item.name), required=templated, default=None if templated else item.path,
                            help=item.help or (item.path if not templated else None))
    if stage.metrics:
        templated = bool(TEMPLATE.search(stage.metrics))
        parser.add_argument("--metrics", required=templated, default=None if templated else stage.metrics)
    for option in stage.options:
        # no default here: the runner fills it in, and tells a given option from an absent one
        # (an absent one gets its `launched` value under a launcher)
        parser.add_argument(option_name(option.name), default=argparse.SUPPRESS,
                            help=f"{option.help} (default: {option.default})")
    return parser


def _fill(template: str, key: str | None) -> str:
    return template.replace("${key}", key) if key is not None else template


OWNER = ".owner"  # marks a scratch folder as this launch's, so the other ranks can use it


def _launch_token() -> str:
    """The same for every process of one `torchrun` / `accelerate launch` on a machine (their
    common parent, the launcher's agent), different for the next launch."""
    return f"{os.environ.get('TORCHELASTIC_RUN_ID', '')}:{os.getppid()}"


@contextlib.contextmanager
def _folder_outputs(stage: Stage, paths: dict[str, Path], wait_s: float = 600.0) -> Iterator[dict[str, Path]]:
    """Scratch folders (`<folder>.partial`) for the stage's non-persistent folder outputs; on
    success each replaces its target, on failure it is removed. Every process of a distributed
    launch writes into the same scratch folder (a phase-2 rank loads what rank 0 saved in phase
    1; a sharded save is written by all ranks): the main process prepares it, the others wait
    for its mark."""
    import time

    staged = {}
    main = is_main_process()
    for out in stage.outputs:
        if not out.folder or out.persist:
            continue
        partial = paths[out.name].with_name(paths[out.name].name + ".partial")
        mark = partial / OWNER
        if main:
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
            mark.write_text(_launch_token(), encoding="utf-8")
        else:
            deadline = time.monotonic() + wait_s
            while not (mark.exists() and mark.read_text(encoding="utf-8") == _launch_token()):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"rank {os.environ.get('RANK')}: the main process never prepared {partial}")
                time.sleep(0.2)
        staged[out.name] = partial
    try:
        yield {**paths, **staged}
    except BaseException:
        if main:
            for partial in staged.values():
                shutil.rmtree(partial, ignore_errors=True)
        raise
    if not main:
        return
    for name, partial in staged.items():
        (partial / OWNER).unlink(missing_ok=True)
        shutil.rmtree(paths[name], ignore_errors=True)
        partial.rename(paths[name])


def stage_launcher(stage: Stage, params: dict[str, Any], key: str | None, name: str) -> tuple[str, list[str]] | None:
    """(the launcher param, its command prefix) when this process is to re-execute the stage
    under it; None to run the stage here: no launcher declared or set, or this process was
    itself started by a launcher (the runner's marker, or RANK from one started by hand)."""
    if not stage.launcher:
        return None
    dotted = _fill(stage.launcher, key)
    value = lookup(params, dotted) if _has(params, dotted) else ""  # absent: the config's default, ""
    if not isinstance(value, str):
        raise SystemExit(f"stage '{name}': params '{dotted}' must be a command prefix (a string), got {value!r}")
    try:
        prefix = shlex.split(value)
    except ValueError as exc:
        raise SystemExit(f"stage '{name}': params '{dotted}' is not a command line ({value!r}): {exc}") from None
    if not prefix:
        return None
    if os.environ.get(LAUNCHED):
        return None
    if "RANK" in os.environ:
        log.info("stage '%s': already under a distributed launcher (RANK=%s); params '%s' is not applied again",
                 name, os.environ["RANK"], dotted)
        return None
    return dotted, prefix


def _terminate_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` that has the kernel SIGTERM the launcher when the stage process dies (a
    SIGKILLed `dvc repro` must not leave a launcher writing into the stage's outputs while a
    rerun starts); None off Linux. ctypes is loaded here, before the fork: the function itself
    runs between fork and exec, where importing is unsafe."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    import signal

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    PR_SET_PDEATHSIG = 1

    def set_parent_death_signal() -> None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))

    return set_parent_death_signal


def run_under_launcher(stage: Stage, name: str, dotted: str, prefix: list[str], arguments: list[str],
                       given: set[str], environment: dict[str, str]) -> None:
    """Re-execute this stage script with the same arguments under the launcher `prefix` (read
    from params `dotted`), wait for it, and exit with its return code. The launched processes
    get `environment` (this process's, before its thread settings, so each sets its own) plus
    the marker that keeps them from launching again."""
    import signal
    import subprocess

    script = sys.argv[0] if sys.argv else ""
    if not script.endswith(".py") or not os.path.isfile(script):
        raise SystemExit(f"stage '{name}': params '{dotted}' asks for a launcher, but this process was not started "
                         f"as a stage script ({script!r}), so there is nothing to re-execute")
    extra = [item for option in stage.options if option.launched is not None and option.name not in given
             for item in (option_name(option.name), option.launched)]
    program = prefix[0]
    # a launcher installed beside this interpreter (the venv's torchrun) also serves a stage run
    # as `.venv/bin/python stages/x.py` without the venv on PATH
    on_path = shutil.which(program)
    beside = None if on_path or os.sep in program else shutil.which(program, path=os.path.dirname(sys.executable))
    command = [beside or program, *prefix[1:], script, *arguments, *extra]
    if not (on_path or beside):
        raise SystemExit(f"stage '{name}': launcher '{program}' (params '{dotted}') was not found on PATH or beside "
                         f"{sys.executable}; command: {shlex.join(command)}")
    log.info("stage '%s': running under the launcher in params '%s': %s", name, dotted, shlex.join(command))
    log.info("stage '%s': this process waits; the launched main process writes the outputs and the MLflow run", name)
    try:
        child = subprocess.Popen(command, env={**environment, LAUNCHED: name},
                                 preexec_fn=_terminate_with_parent())
    except OSError as exc:
        raise SystemExit(f"stage '{name}': launcher '{program}' (params '{dotted}') could not be started ({exc}); "
                         f"command: {shlex.join(command)}") from None
    # a SIGTERM for the stage (a scheduler, `kill`) goes on to the launcher, which stops its
    # processes; a terminal's SIGINT already reached it (same process group): wait for it to stop
    signal.signal(signal.SIGTERM, lambda signum, frame: child.send_signal(signum))
    signal.signal(signal.SIGINT, lambda signum, frame: None)
    code = child.wait()
    log.info("stage '%s': the launched run exited with code %d", name, code)
    raise SystemExit(code if code >= 0 else 128 - code)  # killed by signal N: 128 + N, as a shell reports it


def run_stage(stage: Stage, work: Callable[[StageContext], dict | None], argv: list[str] | None = None) -> None:
    """Run one stage: the shared prologue, `work(ctx)`, and the shared epilogue. `work` returns
    the stage's metrics (written to the declared metrics file and logged), or None for a stage
    without a metrics file. Under a set launcher param the stage is re-executed under it
    instead (`run_under_launcher`) and this process exits with the launched run's code."""
    environment = dict(os.environ)  # before set_threads: a launched process chooses its own threads
    threads = set_threads()
    # python puts the script's folder (stages/) first on sys.path; a script named like a
    # standard module (select, trace) would shadow it for everything imported later
    script_dir = os.path.dirname(os.path.abspath(sys.argv[0])) if sys.argv and sys.argv[0] else None
    if script_dir and sys.path and os.path.abspath(sys.path[0] or ".") == script_dir:
        sys.path.pop(0)
    setup_logging()
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = parser_for(stage).parse_args(arguments)
    key = getattr(args, "key", None)
    name = f"{stage.name}@{key}" if stage.foreach else stage.name
    given = {option.name for option in stage.options if hasattr(args, option.name)}

    from .params import load_params

    params = load_params(args.params)
    paths = {item.name: Path(getattr(args, item.name)) for item in (*stage.inputs, *stage.outputs)}
    for item in stage.inputs:
        if not paths[item.name].exists():
            raise SystemExit(f"stage '{name}': input '{item.name}' not found: {paths[item.name]}")
    # before the config is parsed: that imports the stage's library (torch), which the waiting
    # process does not need
    launch = stage_launcher(stage, params, key, name)
    if launch is not None:
        run_under_launcher(stage, name, *launch, arguments, given, environment)

    from .budget import BudgetExceeded
    from .params import from_dict
    from .tracking import stage_run

    declared = [_fill(p, key) for p in stage.declared_params()]
    guarded = GuardedParams(name, params, declared)
    config = None
    if stage.section:
        section = guarded.get(stage.section)
        cls = stage.config_class()
        config = from_dict(cls, section, stage.section) if cls else section
    options = {option.name: getattr(args, option.name) if option.name in given else option.default
               for option in stage.options}
    metrics_path = Path(args.metrics) if stage.metrics else None

    log.info("stage '%s': %d thread(s), params %s", name, threads, ", ".join(declared) or "none")
    if "WORLD_SIZE" in os.environ:
        log.info("stage '%s': process %s of %s", name, os.environ.get("RANK", "0"), os.environ["WORLD_SIZE"])
    logged = guarded.values()
    if dataclasses.is_dataclass(config):  # the section as the stage sees it, defaults filled in
        logged[stage.section] = dataclasses.asdict(config)
    with stage_run(name, logged, args.params) as run, _folder_outputs(stage, paths) as staged:
        ctx = StageContext(stage=stage, key=key, name=name, config=config, params=guarded, paths=staged,
                           options=options, run=run, log=logging.getLogger(name), tags={"scoder.threads": str(threads)},
                           params_file=Path(args.params))
        try:
            metrics = work(ctx)
        except BudgetExceeded as exc:  # a clean stop, not a crash: what was paid is cached
            log.error("stage '%s' stopped before exceeding its budget: %s", name, exc)
            run.set_tags({"scoder.stopped": "budget cap"})
            raise SystemExit(exc.exit_code) from None
        unread = [k for k in declared if k not in guarded.read]
        if unread:
            raise RuntimeError(f"stage '{name}' declares params {unread} but never read them: remove them from "
                               "its declaration (DVC would rerun it for nothing) and run `scoder pipeline generate`")
        if not is_main_process():
            return
        if metrics_path is None and metrics is not None:
            raise RuntimeError(f"stage '{name}' returned metrics but declares no metrics file (metrics=None)")
        if metrics_path is not None:
            if metrics is None and ctx.partial:
                log.info("stage '%s' did its share of the work; metrics come with the last share", name)
                run.set_tags(ctx.tags)
                return
            if metrics is None:
                raise RuntimeError(f"stage '{name}' declares metrics {metrics_path} but returned none")
            from .io import write_json

            write_json(metrics_path, metrics)
            run.log_metrics(metrics)
            run.log_artifact(metrics_path)
            for field_name in ("precision", "gradient_checkpointing"):  # what the model ran in, as resolved
                if field_name in metrics:
                    ctx.tags.setdefault(f"scoder.{field_name}", str(metrics[field_name]))
        if ctx.tags:
            run.set_tags(ctx.tags)


def load_stages(folder: str | Path = "stages") -> list[Stage]:
    """Every declaration in `folder`/*.py (the module attribute STAGE), with its script path."""
    import importlib.util

    stages = []
    for script in sorted(Path(folder).glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"_stage_{script.stem}", script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        declared = getattr(module, "STAGE", None)
        if not isinstance(declared, Stage):
            raise ValueError(f"{script}: no STAGE declaration (every stage script declares one)")
        stages.append(dataclasses.replace(declared, script=script.as_posix()))
    names = [s.name for s in stages]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"stage names declared twice: {duplicates}")
    return stages


def stages_dir() -> Path:
    """The checkout's stages/ folder: ./stages at the repository root (where DVC runs), else
    the one beside this installed package's source tree."""
    here = Path("stages")
    if here.is_dir():
        return here
    return Path(__file__).resolve().parents[3] / "stages"


def sections(folder: str | Path = "stages") -> dict[str, str]:
    """params section -> "module:Class" its stage parses it into (every declared stage)."""
    out: dict[str, str] = {}
    for stage in load_stages(folder):
        if stage.section and stage.config:
            if out.get(stage.section, stage.config) != stage.config:
                raise ValueError(f"section '{stage.section}' is parsed into two classes: {out[stage.section]}, {stage.config}")
            out[stage.section] = stage.config
    return out

