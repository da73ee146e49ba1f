"""benchmarks/run_all.py: the rows it collects and the table it prints."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks/run_all.py"


def load():
    spec = importlib.util.spec_from_file_location("run_all", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rows_from_each_json_shape_and_the_table():
    run_all = load()
    one = {"name": "pool", "workload": "stdlib", "baseline": "ast", "baseline_value": 1293.0, "fast_value": 25000.0,
           "unit": "functions/s", "ratio": 19.3, "identical": True}
    listed = [{"name": "generation", "workload": "scoring", "ratio": 2.1, "identical": False, "check": "7/8 identical"}]
    nested = {"name": "influence", "cpu_capability": "AVX2", "rows": [{"workload": "w", "ratio": 4.5, "max_rel_diff": 3e-7,
                                                                       "identical": True}]}
    rows = run_all.rows_of(one) + run_all.rows_of(listed) + run_all.rows_of(nested)
    assert [r["name"] for r in rows] == ["pool", "generation", "influence"]
    assert rows[2]["cpu_capability"] == "AVX2"  # a nested row keeps its benchmark's fields
    text = run_all.table(rows + [{"name": "selection", "error": "exit code 1"}])
    lines = text.splitlines()
    assert len(lines) == 2 + 4
    assert "| pool | stdlib | ast | 1,293.0 | 25,000.0 | functions/s | 19.30x | identical |" in lines
    assert "7/8 identical" in lines[3] and "max rel. diff 3.0e-07" in lines[4]
    assert "failed: exit code 1" in lines[5]


def test_every_benchmark_script_exists_and_takes_json_and_quick():
    run_all = load()
    for name, (script, _, quick) in run_all.BENCHMARKS.items():
        text = (SCRIPT.parent / script).read_text()
        assert '"--json"' in text, f"{script} must write --json for run_all"
        assert all(f'"{flag}"' in text for flag in quick), f"{script} must accept {quick}"
