import pytest

from scoder.bootstrap.pool.build import build_pool
from scoder.bootstrap.pool.config import FilterConfig, PoolConfig
from scoder.bootstrap.pool.sources import list_python_files

GOOD = 'def f{n}(x, y):\n    """Combine {n}."""\n    z = x * {n} + y\n    w = z - {n}\n    return w * w\n'


@pytest.fixture()
def corpus(tmp_path):
    (tmp_path / "good.py").write_text("".join(GOOD.format(n=n) + "\n" for n in (3, 7)))
    (tmp_path / "binary.py").write_bytes(b"\x00\x01\x02\x03")
    (tmp_path / "latin1.py").write_bytes('def f(x):\n    """caf\xe9"""\n    return x\n'.encode("latin-1"))
    (tmp_path / "huge.py").write_text("x = 1\n" * 50_000)
    (tmp_path / "broken.py").write_text("def broken(:\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "nested.py").write_text(GOOD.format(n=11))
    (tmp_path / "pkg" / "test").mkdir()
    (tmp_path / "pkg" / "test" / "test_x.py").write_text(GOOD.format(n=13))
    return tmp_path


def test_bad_files_are_skipped_and_counted(corpus):
    config = PoolConfig(source=str(corpus), workers=1, max_file_bytes=100_000)
    result = build_pool(config)
    assert result.metrics["files_skipped"] == {"binary": 1, "non_utf8": 1, "too_large": 1, "syntax_error": 1}
    reasons = {r["path"]: r["reason"] for r in result.skipped_files}
    assert reasons["broken.py"] == "syntax_error" and reasons["latin1.py"] == "non_utf8"
    assert sorted(s["meta"]["qualname"] for s in result.snippets) == ["f11", "f13", "f3", "f7"]


def test_exclude_globs_and_max_files(corpus):
    _, files = list_python_files(PoolConfig(source=str(corpus), exclude_globs=["*/test/*"]))
    assert "test_x.py" not in {f.name for f in files}
    _, files = list_python_files(PoolConfig(source=str(corpus), max_files=2))
    assert len(files) == 2


def test_missing_source_is_a_clear_error(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        build_pool(PoolConfig(source=str(missing)))


def test_counts_every_step_and_parallel_equals_serial(corpus):
    serial = build_pool(PoolConfig(source=str(corpus), workers=1, max_file_bytes=100_000))
    parallel = build_pool(PoolConfig(source=str(corpus), workers=2, max_file_bytes=100_000))
    assert [s["id"] for s in serial.snippets] == [s["id"] for s in parallel.snippets]
    m = serial.metrics
    assert m["functions_found"] == 4 and m["after_filter"] == 4
    assert m["after_filter"] == sum(m["rejected"].values()) * 0 + m["after_exact_dedup"] + m["exact_duplicates"]
    assert m["snippets"] == m["after_near_dedup"] - m["contamination_hits"]


def test_filter_rejections_are_counted(tmp_path):
    (tmp_path / "a.py").write_text('def f():\n    """No args."""\n    x = 1\n    y = 2\n    return x\n')
    result = build_pool(PoolConfig(source=str(tmp_path), workers=1, filters=FilterConfig()))
    assert result.metrics["rejected"]["no_arguments"] == 1 and result.snippets == []


def test_snippet_records_follow_the_data_contract(corpus):
    result = build_pool(PoolConfig(source=str(corpus), workers=1, max_file_bytes=100_000))
    for snippet in result.snippets:
        assert {"id", "code", "source", "category", "meta", "imports"} <= set(snippet)
        assert len(snippet["id"]) == 16


def _rglob_listing(config: PoolConfig):
    """list_python_files as it was: sorted(root.rglob("*.py")) then the filters."""
    import fnmatch

    from scoder.bootstrap.pool.sources import source_root

    root = source_root(config)
    if root.is_file():
        return root.parent, [root]
    files = []
    for path in sorted(root.rglob("*.py")):
        if "site-packages" in path.parts:
            continue
        if any(fnmatch.fnmatch(path.relative_to(root).as_posix(), pattern) for pattern in config.exclude_globs):
            continue
        files.append(path)
        if config.max_files and len(files) >= config.max_files:
            break
    return root, files


def test_listing_equals_sorted_rglob(tmp_path):
    for rel in ["x.py", "a/y.py", "a/b/z.py", "site-packages/x/q.py", "c/site-packages/w.py", "Z/A.py", "a_b/k.py",
                "a/B.PY", ".h.py", "real.py/in.py", "sub/site-packages.py/m.py", "a-b/n.py", "A/m.py"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x = 1\n")
    (tmp_path / "link_dir.py").symlink_to(tmp_path / "a")  # a symlinked directory named *.py
    (tmp_path / "linkdir").symlink_to(tmp_path / "a")  # not followed
    (tmp_path / "link.py").symlink_to(tmp_path / "x.py")
    (tmp_path / "broken.py").symlink_to(tmp_path / "nowhere")
    for source in (tmp_path, tmp_path / "a", tmp_path / "x.py", tmp_path / "site-packages"):
        for config in (PoolConfig(source=str(source)), PoolConfig(source=str(source), max_files=3),
                       PoolConfig(source=str(source), exclude_globs=["a/*", "*/b/*"])):
            assert list_python_files(config) == _rglob_listing(config)
    assert len(list_python_files(PoolConfig(source=str(tmp_path)))[1]) == 15  # dirs named *.py and symlinks too
