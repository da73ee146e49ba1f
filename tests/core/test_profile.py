"""Params profiles: the paper overlay validates by dry run; typos, keys in params and unknown
names fail with the place named."""

import yaml

from scoder.cli import main
from scoder.core.profile import check_params, load_profile, merge


def test_merge_replaces_leaves_and_merges_mappings():
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 2}
    assert merge(base, {"a": {"c": [3]}}) == {"a": {"b": 1, "c": [3]}, "d": 2}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 2}  # untouched


def test_default_params_and_paper_profile_pass_the_dry_run(repo_root, capsys):
    assert check_params(load_profile(repo_root / "params.yaml", None))
    paper = load_profile(repo_root / "params.yaml", repo_root / "configs/paper.yaml")
    models = check_params(paper)
    assert models["train.model"] == "Qwen/Qwen2.5-Coder-7B-Instruct"
    assert models["scoder_train.train.model"] == "deepseek-ai/deepseek-coder-6.7b-base"
    assert models["distill.teacher.model"] == "gpt-4o-2024-08-06 @ https://api.openai.com/v1"
    assert paper["train"]["num_checkpoints"] == 5 and paper["sample"]["sampling"]["n"] == 3
    assert paper["sample"]["sampling"]["temperature"] == 0.2
    assert [paper["rounds"][r]["select"] for r in ("1", "2")] == [20000, 40000]
    assert paper["reference"]["lora"] == {"r": 128, "alpha": 512, "dropout": 0.0, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}
    assert main(["params", "check", "--params", str(repo_root / "params.yaml"), "--profile", str(repo_root / "configs/paper.yaml")]) == 0
    assert "meta-llama/Llama-3.1-8B" in capsys.readouterr().out


def test_dry_run_names_every_problem(repo_root, tmp_path, capsys):
    overlay = {"train": {"learning_rte": 1e-5},  # typo
               "distill": {"teacher": {"backend": "openai", "api_key_env": "sk-live-1234", "endpoint": "api.openai.com"}},
               "specialists": {"embed_model": "not a model"},
               "rounds": {"3": {"previous": "9", "snippets": 1, "select": 1}}}
    profile = tmp_path / "bad.yaml"
    profile.write_text(yaml.safe_dump(overlay))
    assert main(["params", "check", "--params", str(repo_root / "params.yaml"), "--profile", str(profile)]) == 1
    err = capsys.readouterr().err
    for expected in ("learning_rte", "distill.teacher.api_key_env", "distill.teacher.endpoint", "specialists.embed_model",
                     "rounds.3.previous: no synthesizer '9'"):
        assert expected in err, expected


def test_apply_writes_a_params_file_that_checks(repo_root, tmp_path):
    out = tmp_path / "params.yaml"
    assert main(["params", "apply", str(repo_root / "configs/paper.yaml"), "--params", str(repo_root / "params.yaml"), "-o", str(out)]) == 0
    written = yaml.safe_load(out.read_text())
    assert written["specialists"]["k"] == 5 and written["scoder_train"]["train"]["method"] == "full"
    check_params(written)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("trian: {epochs: 1}\n")
    try:
        load_profile(repo_root / "params.yaml", unknown)
    except ValueError as exc:
        assert "trian" in str(exc)
    else:
        raise AssertionError("an unknown section in a profile must fail")
