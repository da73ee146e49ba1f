"""Precision names resolve by the hardware's own probes, and every model loader honours them."""

import sys
import types
from types import MappingProxyType

import pytest
import torch

from scoder.models import precision as precision_module
from scoder.models.precision import (
    PRECISIONS,
    cpu_has_native_bf16,
    resolve_precision,
    torch_dtype,
)

AVX2_ONLY = {"architecture": "x86_64", "avx2": True, "avx512_f": False, "avx512_bf16": False, "amx_tile": False}
AVX512_BF16 = {**AVX2_ONLY, "avx512_f": True, "avx512_bf16": True}
AMX = {**AVX512_BF16, "amx_tile": True, "amx_bf16": True}


@pytest.fixture()
def cpu(monkeypatch):
    """Pretend to be a CPU with the given capabilities and ATen dispatch level."""
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)

    def pretend(caps: dict, dispatch: str):
        monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: MappingProxyType(caps))
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: dispatch)

    return pretend


def test_auto_is_fp32_on_an_avx2_only_cpu(cpu):
    cpu(AVX2_ONLY, "AVX2")
    assert not cpu_has_native_bf16()
    assert resolve_precision("auto") == "fp32"


@pytest.mark.parametrize("caps", [AMX, AVX512_BF16], ids=["amx", "avx512_bf16"])
def test_auto_is_bf16_where_the_cpu_has_native_bf16(cpu, caps):
    cpu(caps, "AVX512")
    assert cpu_has_native_bf16()
    assert resolve_precision("auto") == "bf16"


def test_an_emulated_avx2_cpu_is_not_native_bf16(cpu, monkeypatch):
    """ATEN_CPU_CAPABILITY=avx2 or ONEDNN_MAX_CPU_ISA=AVX2 on an AMX machine: the kernels run as on AVX2."""
    cpu(AMX, "AVX2")
    assert resolve_precision("auto") == "fp32"
    cpu(AMX, "AVX512")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert resolve_precision("auto") == "fp32"
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")
    assert resolve_precision("auto") == "bf16"


def test_explicit_names_never_depend_on_the_hardware(cpu):
    for caps, dispatch in ((AVX2_ONLY, "AVX2"), (AMX, "AVX512")):
        cpu(caps, dispatch)
        assert resolve_precision("fp32") == "fp32" and resolve_precision("bf16") == "bf16"


def test_cuda_asks_torch_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("auto", "cuda") == "fp32"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("auto", "cuda:0") == "bf16"


@pytest.mark.parametrize("name", ["fp16", "float32", "BF16", "", None])
def test_an_unknown_name_is_an_error_naming_the_allowed_ones(name):
    with pytest.raises(ValueError, match="expected one of: fp32, bf16, auto"):
        resolve_precision(name)


def test_dtypes_of_resolved_precisions():
    assert PRECISIONS == ("fp32", "bf16", "auto")
    assert torch_dtype("fp32") is torch.float32 and torch_dtype("bf16") is torch.bfloat16
    with pytest.raises(ValueError, match="not resolved"):
        torch_dtype("auto")


def test_the_probes_exist_in_this_torch():
    """The resolution reads these; a torch that renames them must fail here, not resolve silently."""
    for probe in (torch.cpu._is_avx512_bf16_supported, torch.cpu._is_amx_tile_supported):
        assert isinstance(probe(), bool)
    assert isinstance(torch.backends.cpu.get_cpu_capability(), str)
    assert isinstance(cpu_has_native_bf16(), bool)


# --- model loaders -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from micro_profile import build_micro_model

    return build_micro_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.mark.slow
@pytest.mark.parametrize("name, dtype", [("fp32", torch.float32), ("bf16", torch.bfloat16)])
def test_the_transformers_backend_loads_weights_in_the_asked_dtype(tiny_model, tmp_path, name, dtype):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from scoder.models.llm import LLMConfig, SamplingParams, load_llm

    adapter = tmp_path / "adapter"
    base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM")).save_pretrained(adapter)
    llm = load_llm(LLMConfig(model=str(tiny_model), adapter=str(adapter), precision=name, use_cache=False))
    assert llm.precision == name
    assert {p.dtype for p in llm.model.parameters()} == {dtype}  # adapter weights included
    out = llm.generate([[{"role": "user", "content": "hi"}]], SamplingParams(max_tokens=2))
    assert len(out[0].texts) == 1


@pytest.mark.slow
def test_the_transformers_backend_resolves_auto_and_keys_its_cache_by_precision(tiny_model, monkeypatch):
    from scoder.models.llm import LLMConfig, load_llm

    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: False)
    fp32 = load_llm(LLMConfig(model=str(tiny_model), precision="auto", use_cache=False))
    assert fp32.precision == "fp32" and next(fp32.model.parameters()).dtype == torch.float32
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: True)
    bf16 = load_llm(LLMConfig(model=str(tiny_model), precision="auto", use_cache=False))
    assert bf16.precision == "bf16" and next(bf16.model.parameters()).dtype == torch.bfloat16
    assert fp32.identity != bf16.identity  # cached fp32 answers never serve a bf16 model
    assert "precision" not in fp32.identity  # fp32 cache keys are those of before precision existed


def test_the_vllm_backend_passes_the_dtype_explicitly(monkeypatch):
    engines = []

    class Engine:
        def __init__(self, **kwargs):
            engines.append(kwargs)

    vllm = types.ModuleType("vllm")
    vllm.LLM = Engine
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    from scoder.models.llm import LLMConfig
    from scoder.models.llm.vllm_backend import VLLMBackend

    for name, dtype in (("fp32", "float32"), ("bf16", "bfloat16")):
        backend = VLLMBackend(LLMConfig(backend="vllm", model="org/some-model", precision=name))
        assert engines[-1]["dtype"] == dtype and backend.precision == name and backend.identity["precision"] == name


def test_the_openai_backend_says_precision_does_not_apply():
    from scoder.models.llm import LLMConfig
    from scoder.models.llm.openai_backend import OpenAICompatibleLLM

    assert OpenAICompatibleLLM(LLMConfig(backend="openai", precision="bf16")).precision == "n/a"


# --- gradient features -------------------------------------------------------------------

def test_the_old_influence_bf16_flag_is_an_unknown_key():
    """One name for one setting: `influence.bf16` was replaced by `influence.precision`."""
    from scoder.bootstrap.feature_stages import InfluenceConfig
    from scoder.core.params import from_dict

    with pytest.raises(ValueError, match="unknown key.*bf16"):
        from_dict(InfluenceConfig, {"bf16": True}, "influence")
    assert from_dict(InfluenceConfig, {"precision": "bf16"}, "influence").precision == "bf16"


def test_config_sections_reject_an_unknown_precision_when_parsed():
    from scoder.bootstrap.influence import FeatureConfig
    from scoder.core.params import from_dict
    from scoder.models.llm import LLMConfig

    with pytest.raises(ValueError, match="influence.precision: unknown precision 'bf61'"):
        from_dict(FeatureConfig, {"precision": "bf61"}, "influence")
    with pytest.raises(ValueError, match="LLMConfig.precision: unknown precision 'float16'"):
        from_dict(LLMConfig, {"precision": "float16"}, "engine")


@pytest.mark.slow
@pytest.mark.parametrize("name, autocast", [("fp32", False), ("bf16", True)])
def test_gradient_features_run_the_reference_model_in_the_asked_precision(tiny_model, tmp_path, name, autocast):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from scoder.bootstrap.influence import FeatureConfig, compute_features

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    seen = []
    model.base_model.model.model.layers[0].mlp.up_proj.register_forward_hook(
        lambda module, args, out: seen.append((torch.is_autocast_enabled("cpu"), out.dtype)))
    examples = [{"id": str(i), "prompt": [{"role": "user", "content": f"add {i}"}],
                 "completion": [{"role": "assistant", "content": f"x + {i}"}]} for i in range(2)]
    counts = compute_features(model, tokenizer, examples, FeatureConfig(proj_dim=8, batch_size=2, precision=name), tmp_path)
    assert counts["precision"] == name
    assert set(seen) == {(autocast, torch.bfloat16 if autocast else torch.float32)}
    assert {p.dtype for p in model.parameters()} == {torch.float32}  # autocast only: the weights stay fp32
