"""vLLM offline engine (GPU; `pip install .[gpu]`). Imported only when selected.

LoRA adapters (a synthesizer checkpoint) are served through `LoRARequest`: one engine serves
the M checkpoints of a synthesizer, `activate_adapter` switching between them (the engine is
started with LoRA enabled when `adapter` is set; vLLM keeps up to `max_loras` adapters
resident). `n` samples per prompt come from one request. A call is cut into the same fixed
batches as the transformers backend's (`batch_size` prompts; give vLLM a large one), each
cached on its own and seeded from its start, so a Ray worker computes a batch as this process
would. Not exercised by this repository's CI (no GPU there).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from scoder.core.cache import ResponseCache, folder_digest
from scoder.models.precision import resolve_precision
from scoder.models.registry import resolve
from scoder.models.llm.base import Completion, LLMConfig, Messages, SamplingParams, generate_in_batches, is_prefilled


class VLLMBackend:
    def __init__(self, config: LLMConfig, cache: ResponseCache | None = None):
        try:
            from vllm import LLM as Engine
        except ImportError as exc:
            raise ImportError("backend 'vllm' needs the gpu extra: pip install -e '.[gpu]' (CUDA only)") from exc
        self.config = config
        self.cache = cache
        self.usage = {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0}  # tokens computed here
        resolved = resolve(config.model)
        if resolved.gguf_file:
            raise ValueError(f"vllm backend: give a hub name or a folder, not the GGUF model '{config.model}'")
        self.precision = resolve_precision(config.precision, "cuda")  # explicit, not vLLM's checkpoint-dtype default
        self.engine = Engine(
            model=resolved.path,
            dtype={"fp32": "float32", "bf16": "bfloat16"}[self.precision],
            tensor_parallel_size=config.tensor_parallel_size,
            gpu_memory_utilization=config.gpu_memory_utilization,
            enable_lora=bool(config.adapter),
            max_lora_rank=config.max_lora_rank,
            seed=0,
        )
        self.lora = None
        # the adapter's content, not its folder name: rounds retrain under the same name
        self.identity = {
            "backend": "vllm",
            "model": resolved.path,
            "adapter_sha256": None,
            "precision": self.precision,
        }
        if config.adapter:
            self.activate_adapter(config.adapter, config.adapter)

    def activate_adapter(self, folder: str, name: str, keep_others: bool = False) -> None:
        """Serve the LoRA adapter in `folder` from now on (the engine stays; vLLM loads the
        adapter on its first request). `keep_others` is accepted for the interface: vLLM
        evicts adapters itself, least recently used first."""
        if not self.config.adapter:
            raise ValueError("vllm backend: start the engine with an adapter (LLMConfig.adapter) to enable LoRA "
                             "before switching adapters")
        from vllm.lora.request import LoRARequest

        digest = folder_digest(folder)
        # the id names the adapter's content: a retrained checkpoint under the same folder is new
        adapter_id = int(digest[:7], 16) + 1
        self.lora = LoRARequest(name, adapter_id, str(folder))
        self.identity["adapter_sha256"] = digest

    def _sampling(self, params: SamplingParams, **extra):
        from vllm import SamplingParams as VSamplingParams

        return VSamplingParams(
            n=params.n, temperature=params.temperature, top_p=params.top_p,
            max_tokens=params.max_tokens, stop=params.stop or None, seed=params.seed, **extra,
        )

    def generate(self, prompts: Sequence[Messages], params: SamplingParams) -> list[Completion]:
        return generate_in_batches(self, prompts, params)

    def compute_batches(self, chunks, params: SamplingParams, on_batch) -> None:
        """Each fixed batch (start, prompts) as one engine call, seeded from its start; no cache,
        no usage counting (the caller's job)."""
        for position, (start, chunk) in enumerate(chunks):
            on_batch(position, self._generate_batch(chunk, dataclasses.replace(params, seed=params.seed + start)))

    def _generate_batch(self, prompts: list[Messages], params: SamplingParams) -> list[Completion]:
        prefilled = [is_prefilled(p) for p in prompts]
        if any(prefilled) and not all(prefilled):
            raise ValueError("vllm backend: a batch must be all prefilled (ending in an assistant message) or none")
        continuation = {"continue_final_message": True, "add_generation_prompt": False} if any(prefilled) else {}
        outputs = self.engine.chat([list(p) for p in prompts], self._sampling(params), lora_request=self.lora,
                                   use_tqdm=True, **continuation)
        results = [
            Completion(
                texts=[o.text for o in out.outputs],
                prompt_tokens=len(out.prompt_token_ids or []),
                completion_tokens=[len(o.token_ids) for o in out.outputs],
                finish_reasons=["length" if o.finish_reason == "length" else "stop" for o in out.outputs],
            )
            for out in outputs
        ]
        return results

    def next_token_logprobs(self, prompts: Sequence[Messages], tokens: Sequence[str]) -> list[list[float]]:
        tokenizer = self.engine.get_tokenizer()
        ids = [tokenizer.encode(t, add_special_tokens=False)[0] for t in tokens]
        params = self._sampling(SamplingParams(max_tokens=1), logprobs=20, allowed_token_ids=None)
        outputs = self.engine.chat([list(p) for p in prompts], params, lora_request=self.lora, use_tqdm=False)
        rows = []
        for out in outputs:
            top = out.outputs[0].logprobs[0]
            rows.append([top[i].logprob if i in top else float("-inf") for i in ids])
        return rows

    def fill_choices(self, prompts, parts, choices):
        raise NotImplementedError(
            "forced template scoring (score.mode: forced, or score.expected) needs the transformers backend; "
            "the vllm backend supports score.mode: generate"
        )
