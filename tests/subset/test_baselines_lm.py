"""PPL and IFD with the shipped SmolLM2 on real instructions."""

import numpy as np
import pytest

from scoder.core.io import read_records
from scoder.models.llm import LLMConfig, load_llm
from scoder.subset.baselines import ifd_scores, response_losses
from scoder.subset.selection import SelectConfig, select_records


@pytest.fixture(scope="module")
def records(shared_data):
    data = read_records(shared_data / "instructions" / "code_alpaca_2k.json")
    return sorted(data, key=lambda r: len(r["output"]))[100:106]  # short ones, for speed


@pytest.fixture(scope="module")
def smollm2():
    return load_llm(LLMConfig(model="smollm2", use_cache=False))


def test_losses_do_not_depend_on_batching(records, smollm2):
    instructions = [r["instruction"] for r in records]
    outputs = [r["output"] for r in records]
    together = response_losses(smollm2, instructions, outputs, batch_size=6)
    alone = response_losses(smollm2, instructions, outputs, batch_size=1)
    assert np.allclose(together[0], alone[0], atol=1e-3) and np.allclose(together[1], alone[1], atol=1e-3)
    assert np.isfinite(together[0]).all() and (together[0] > 0).all()


def test_the_right_instruction_helps_on_average(records, smollm2):
    instructions = [r["instruction"] for r in records]
    outputs = [r["output"] for r in records]
    matched, unconditioned = response_losses(smollm2, instructions, outputs, batch_size=6)
    mismatched, _ = response_losses(smollm2, instructions[1:] + instructions[:1], outputs, batch_size=6)
    assert matched.mean() < mismatched.mean()
    assert ifd_scores(matched, unconditioned).shape == (6,)


@pytest.mark.parametrize("method", ["ifd", "ppl_low", "ppl_high"])
def test_lm_methods_select_distinct_records(records, method, tmp_path):
    config = SelectConfig(method=method, size=3, text_fields=["instruction"], response_fields=["output"],
                          feature_cache=str(tmp_path))
    selected, metrics = select_records(records, config)
    assert len(selected) == 3 and len({r["output"] for r in selected}) == 3
    assert metrics["method"] == method
