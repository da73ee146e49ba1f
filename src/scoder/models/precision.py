"""The numeric precision a model runs in, as an explicit params value.

Libraries choose for us otherwise (TRL's SFTConfig turns bf16 on, transformers infers a
checkpoint's dtype), and bf16 is only fast where the hardware computes it: without
AVX512-BF16 or AMX a CPU runs bf16 matmuls on slow fallback kernels, and the numbers differ
from one CPU to the next. So every model-running config names one of PRECISIONS, and
`resolve_precision` turns it into what is actually used: "fp32" or "bf16".
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

PRECISIONS = ("fp32", "bf16", "auto")

# oneDNN ISA caps (ONEDNN_MAX_CPU_ISA) at or above which bf16 has native instructions
_ONEDNN_BF16_ISAS = ("AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX10", "ALL", "DEFAULT")


def cpu_has_native_bf16() -> bool:
    """Whether bf16 matmuls on this CPU run on native instructions: the hardware has them
    (AVX512-BF16 or AMX on x86, BF16 on ARM) and neither ATen's kernel dispatch
    (ATEN_CPU_CAPABILITY) nor oneDNN (ONEDNN_MAX_CPU_ISA) is capped below them, which is
    how an AVX2-only machine is emulated."""
    import torch

    caps = torch.cpu.get_capabilities()
    if caps.get("architecture") in ("aarch64", "arm64"):
        return bool(caps.get("bf16") or caps.get("sve_bf16"))
    if not (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()):
        return False
    if torch.backends.cpu.get_cpu_capability() != "AVX512":
        return False
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", os.environ.get("DNNL_MAX_CPU_ISA", "")).strip().upper()
    return not isa or isa.startswith(_ONEDNN_BF16_ISAS)


def has_native_bf16(device: str = "cpu") -> bool:
    import torch

    kind = torch.device(device).type
    if kind == "cpu":
        return cpu_has_native_bf16()
    if kind == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return False  # other accelerators: name bf16 explicitly where it is wanted


def check_precision(name: str, where: str = "precision") -> str:
    """`name` if it is one of PRECISIONS; for config classes, so a typo fails the params dry
    run instead of a stage (needs no torch)."""
    if name not in PRECISIONS:
        raise ValueError(f"{where}: unknown precision {name!r} (expected one of: {', '.join(PRECISIONS)})")
    return name


def resolve_precision(name: str, device: str = "cpu") -> str:
    """"fp32" or "bf16" for a params value; "auto" is bf16 only where `device` computes
    bf16 natively."""
    check_precision(name)
    if name == "auto":
        return "bf16" if has_native_bf16(device) else "fp32"
    return name


def torch_dtype(resolved: str) -> torch.dtype:
    """The torch dtype of a resolved precision (weights loaded for inference)."""
    import torch

    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    if resolved not in dtypes:
        raise ValueError(f"precision {resolved!r} is not resolved (expected fp32 or bf16; see resolve_precision)")
    return dtypes[resolved]
