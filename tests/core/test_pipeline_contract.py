"""The stage contract holds: dvc.yaml and the README stage table are what the declarations
generate; each stage's code deps are its import closure (checked against Python's own
modulefinder); planting an import makes the check fail; and `dvc status` after touching a
module lists exactly the stages whose closure holds it."""

from __future__ import annotations

import ast
import json
import modulefinder
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from scoder.core.pipeline import generate, import_closure
from scoder.core.stage import load_stages

BIN = Path(sys.executable).parent


def test_dvc_yaml_and_readme_match_the_declarations(repo_root):
    assert generate(repo_root, write=False) == [], "run `scoder pipeline generate`"


def copy_tree(repo_root: Path, dest: Path) -> Path:
    for name in ("stages", "src", "configs"):
        shutil.copytree(repo_root / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("dvc.yaml", "README.md", "params.yaml"):
        shutil.copy2(repo_root / name, dest / name)
    return dest


def test_a_planted_import_fails_the_check_until_dvc_yaml_follows(repo_root, tmp_path):
    root = copy_tree(repo_root, tmp_path)
    script = root / "stages" / "cost.py"
    assert "src/scoder/core/profile.py" not in import_closure(script, root / "src")
    text = script.read_text()
    script.write_text(text.replace("    from scoder.core.cost import summarize\n",
                                   "    from scoder.core.cost import summarize\n    from scoder.core import profile  # noqa\n"))
    assert generate(root, write=False) == ["dvc.yaml"]
    assert "src/scoder/core/profile.py" in import_closure(script, root / "src")
    generate(root, write=True)
    assert generate(root, write=False) == []
    cost = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]["cost"]
    assert "src/scoder/core/profile.py" in cost["deps"]


def modulefinder_closure(script: Path, src: Path) -> set[str]:
    """An independent closure: the standard library's bytecode scan, limited to the package."""
    finder = modulefinder.ModuleFinder(path=[str(src)])
    finder.run_script(str(script))
    return {Path(m.__file__).resolve().relative_to(src.parent.resolve()).as_posix()
            for name, m in finder.modules.items() if m.__file__ and name.split(".")[0] == "scoder"}


def test_declared_code_deps_equal_the_import_closure_found_by_modulefinder(repo_root):
    stages = yaml.safe_load((repo_root / "dvc.yaml").read_text())["stages"]
    for stage in load_stages(repo_root / "stages"):
        if not stage.in_pipeline:
            continue
        body = stages[stage.name].get("do", stages[stage.name])
        declared = {d for d in body["deps"] if d.startswith("src/") and d.endswith(".py")}
        assert declared == modulefinder_closure(repo_root / stage.script, repo_root / "src"), stage.name


def test_experiment_pipelines_declare_their_import_closure_relative_to_their_folder(repo_root):
    from scoder.core.pipeline import experiment_folders

    folders = experiment_folders(repo_root)
    assert [f.name for f in folders] == ["validity"]
    for folder in folders:
        stages = yaml.safe_load((folder / "dvc.yaml").read_text())["stages"]
        for stage in load_stages(folder / "stages"):
            body = stages[stage.name].get("do", stages[stage.name])
            declared = {(folder / d).resolve().relative_to(repo_root.resolve()).as_posix() for d in body["deps"]
                        if d.startswith("../../src/") and d.endswith(".py")}
            assert declared == modulefinder_closure(folder / stage.script, repo_root / "src"), (folder.name, stage.name)
            for dep in body["deps"]:  # every dep resolves inside the repository (no path to a sibling checkout)
                if "${" not in dep:
                    assert (folder / dep).resolve().is_relative_to(repo_root.resolve()), dep


def _dvc(args, cwd):
    out = subprocess.run([str(BIN / "dvc"), *args], cwd=cwd, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


@pytest.mark.slow
def test_dvc_status_after_touching_each_module_lists_exactly_the_stages_that_import_it(repo_root, tmp_path):
    """A project with placeholder data (every dep and out exists, recorded by `dvc commit`);
    then every module of the package is touched in turn and `dvc status` is asked."""
    root = copy_tree(repo_root, tmp_path)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    _dvc(["init", "-q"], root)
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        stages = list(repo.index.stages)
        for stage in stages:
            for item in [*stage.deps, *stage.outs]:
                path = Path(item.fs_path)
                if path.exists():
                    continue
                if path.suffix:  # a file
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text("{}\n")
                else:
                    path.mkdir(parents=True, exist_ok=True)
                    (path / "placeholder").write_text("x\n")
        names = [s.addressing for s in stages]
    _dvc(["commit", "-f", "-q"], root)
    _dvc(["commit", "-f", "-q"], root)  # again: the first wrote .gitignore files into data/rounds, a dep of report
    assert json.loads(_dvc(["status", "--json"], root)) == {}

    # expected: Python's own modulefinder over each stage script, per unrolled stage in the lock
    closure: dict[str, set[str]] = {}
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    assert len(lock) == len(names)
    scripts = {s.name: root / s.script for s in load_stages(root / "stages")}
    for name in lock:
        for module in modulefinder_closure(scripts[name.split("@")[0]], root / "src"):
            closure.setdefault(module, set()).add(name)
    modules = sorted(p.relative_to(root).as_posix() for p in (root / "src" / "scoder").rglob("*.py"))
    assert len(modules) > 50
    for module in modules:
        path = root / module
        original = path.read_bytes()
        path.write_bytes(original + b"\n# touched\n")
        try:
            with Repo(str(root)) as repo:  # `dvc status`, in process (a subprocess per module costs minutes)
                status = {key.rsplit(":", 1)[-1]: value for key, value in repo.status().items()}
        finally:
            path.write_bytes(original)
        changed = {stage for stage, changes in status.items()
                   if any(module in (c.get("changed deps") or {}) for c in changes if isinstance(c, dict))}
        assert changed == closure.get(module, set()), module
        assert set(status) == changed, module  # nothing else changed


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def test_package_files_run_by_path_are_imported_so_their_stages_depend_on_them(repo_root):
    """A module that runs another package file as a script (`python -I harness.py`)
    must import it, or the file is in no stage's closure and DVC never reruns for it."""
    src = repo_root / "src" / "scoder"
    files = {p.name for p in src.rglob("*.py")}
    named = []
    for path in src.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
                if node.value.endswith(".py") and Path(node.value).name in files - {"__init__.py"}:
                    named.append(f"{path.relative_to(repo_root)}: {node.value!r}")
    assert named == []
    stages = yaml.safe_load((repo_root / "dvc.yaml").read_text())["stages"]
    for stage in ("score", "synthesize", "evaluate", "specialist_evaluate"):
        body = stages[stage].get("do", stages[stage])
        assert "src/scoder/execution/harness.py" in body["deps"], stage
    for stage in ("evaluate", "specialist_evaluate"):
        assert "src/scoder/execution/judge.py" in stages[stage]["deps"], stage
