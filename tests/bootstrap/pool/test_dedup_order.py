"""Which kept snippet a near-duplicate is reported against must not depend on Python's
per-process string hash seed (LSH returns candidates as a set)."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

SCRIPT = """
import json, sys
from scoder.bootstrap.pool.build import build_pool
from scoder.bootstrap.pool.config import PoolConfig
result = build_pool(PoolConfig(source=sys.argv[1], workers=1))
print(json.dumps(result.removed))
"""


def test_duplicate_report_is_independent_of_the_hash_seed(tmp_path):
    # functools has groups of near-identical wrappers: several kept snippets qualify as "of"
    shutil.copy(Path(sysconfig.get_paths()["stdlib"]) / "functools.py", tmp_path / "functools.py")
    reports = set()
    for seed in ("1", "2", "3", "4"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], env=env, capture_output=True, text=True, check=True)
        removed = json.loads(out.stdout)
        assert removed, "functools.py should contain near-duplicates"
        reports.add(json.dumps(removed, sort_keys=True))
    assert len(reports) == 1
