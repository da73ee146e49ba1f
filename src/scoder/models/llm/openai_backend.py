"""OpenAI-compatible chat completions (OpenAI itself, `vllm serve`, any compatible server).

- The API key is read from the environment variable named by `api_key_env`; it never
  appears in params, logs, MLflow or the cache.
- Bounded concurrency (a thread pool of `max_concurrency`).
- Retries with exponential backoff and full jitter on 429, 5xx, timeouts, connection errors
  and malformed bodies; other 4xx are errors at once (they would fail again).
- Every successful response is committed to the persistent cache before it is used, keyed
  by (endpoint, model, messages, sampling params, sample index), so a rerun or a crash
  never pays twice.
- The budget cap (`max_budget_usd`, scoder.core.budget): each attempt reserves its worst case
  (prompt bytes, `max_tokens` of answer) before it is sent and settles at the billed usage; a
  timed-out attempt stays counted (the server may have billed it).
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

import requests

from scoder.core.budget import Budget
from scoder.core.cache import ResponseCache, cache_key
from scoder.core.prices import price_for, prompt_tokens_upper_bound
from scoder.models.llm.base import Completion, LLMConfig, Messages, SamplingParams, is_prefilled

log = logging.getLogger(__name__)

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class EndpointError(RuntimeError):
    """The endpoint failed for good (retry budget spent, or a non-retryable answer)."""


class OpenAICompatibleLLM:
    def __init__(self, config: LLMConfig, cache: ResponseCache | None = None, session: requests.Session | None = None):
        self.config = config
        self.cache = cache
        self.precision = "n/a"  # the server chooses; `config.precision` does not apply
        self.base_url = config.endpoint.rstrip("/")
        self.url = self.base_url + "/chat/completions"
        self._session = session or requests.Session()
        self._rng = random.Random()  # jitter only; never affects outputs
        self._lock = threading.Lock()
        self.stats = {"requests": 0, "retries": 0, "cache_hits": 0}
        # every answer this backend handed out, cached or paid (the stage's ledger entry)
        self.usage = {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0}
        self._counted: set[str] = set()  # keys already counted (a prefetched answer is served twice)
        self.prices = {tier: price_for(config, tier) for tier in ("sync", "batch")}
        self.budget = Budget(config.max_budget_usd, self.prices[self.tier], f"{config.backend} model {config.model}")
        if self.budget.price.row == "unpriced":
            log.warning("model %s is not in the price table: its answers are ledgered at $0 (set price_as or "
                        "price_in_per_1m / price_out_per_1m to price them)", config.model)

    tier = "sync"  # the rate this backend's own answers are billed at

    def cost_of(self, value: dict) -> float:
        """USD a cached or fresh answer was billed (at the tier it was billed at)."""
        price = self.prices.get(value.get("billing", "sync"), self.prices["sync"])
        return price.cost(int(value.get("prompt_tokens", 0)), int(value.get("completion_tokens", 0)))

    def worst_case_usd(self, body: dict[str, Any]) -> float:
        """The most one request can be billed: an upper bound of its prompt tokens and its
        whole `max_tokens` of answer (per sample: n=1 each)."""
        return self.budget.price.cost(prompt_tokens_upper_bound(body.get("messages", [])), int(body.get("max_tokens") or 0))

    # --- HTTP with retries -------------------------------------------------------------
    def _headers(self, json_body: bool = True) -> dict[str, str]:
        headers = {"Content-Type": "application/json"} if json_body else {}
        key = os.environ.get(self.config.api_key_env) if self.config.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _count(self, name: str) -> None:
        with self._lock:
            self.stats[name] += 1

    def _send(self, method: str, url: str, worst_usd: float = 0.0, check=None, retries: int | None = None,
              **kwargs) -> tuple[requests.Response, float]:
        """One HTTP call with `retries` (default: max_retries); returns the response and the
        budget it holds (released by the caller once the billed usage is known).
        `check(response)` raises ValueError, KeyError, IndexError or TypeError for a malformed
        body, which is retried."""
        cfg = self.config
        last_problem = "no attempt made"
        retries = cfg.max_retries if retries is None else retries
        for attempt in range(retries + 1):
            if attempt:
                self._count("retries")
                delay = min(cfg.backoff_max_s, cfg.backoff_base_s * 2 ** (attempt - 1))
                time.sleep(self._rng.uniform(0, delay))  # full jitter
            held = self.budget.reserve(worst_usd) if worst_usd else 0.0
            self._count("requests")
            try:
                response = self._session.request(method, url, headers=self._headers("json" in kwargs),
                                                 timeout=cfg.timeout_s, **kwargs)
            except requests.Timeout:
                self.budget.settle(held, held, answered=0)  # it may have been served and billed
                last_problem = f"timed out after {cfg.timeout_s}s"
                continue
            except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError) as exc:
                self.budget.settle(held, held, answered=0)  # served (and billed), its body cut on the way
                last_problem = f"answer cut off ({type(exc).__name__})"
                continue
            except requests.ConnectionError as exc:
                self.budget.settle(held, 0.0, answered=0)
                last_problem = f"connection failed ({type(exc).__name__})"
                continue
            if response.status_code in RETRY_STATUS:
                self.budget.settle(held, 0.0, answered=0)
                last_problem = f"HTTP {response.status_code}"
                continue
            if response.status_code >= 400:
                self.budget.settle(held, 0.0, answered=0)
                raise EndpointError(f"{url} answered HTTP {response.status_code}: {response.text[:300]}")
            if check is not None:
                try:
                    check(response)
                except (ValueError, KeyError, IndexError, TypeError):
                    self.budget.settle(held, held, answered=0)  # a 200 is billed even if its body is cut
                    last_problem = "malformed response body"
                    continue
            return response, held
        raise EndpointError(f"{url} failed after {retries + 1} attempt{'s' if retries else ''}: {last_problem}")

    def _post(self, body: dict[str, Any], worst_usd: float = 0.0) -> tuple[dict[str, Any], float]:
        response, held = self._send("POST", self.url, worst_usd, check=lambda r: r.json()["choices"][0]["message"], json=body)
        return response.json(), held

    # --- requests, answers and their cache values (shared with the batch backend) ----------
    def chat_request(self, messages: Messages, params: SamplingParams, index: int) -> tuple[str, dict[str, Any]]:
        """(cache key, request body) of sample `index` of one prompt."""
        sampling = {
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
            "stop": params.stop or None,
            "seed": params.seed + index,
        }
        key = cache_key("openai", self.config.endpoint, self.config.model, messages, sampling)
        return key, {"model": self.config.model, "messages": messages, **{k: v for k, v in sampling.items() if v is not None}}

    def logprobs_request(self, messages: Messages) -> tuple[str, dict[str, Any]]:
        body = {"model": self.config.model, "messages": list(messages), "max_tokens": 1, "temperature": 0.0,
                "logprobs": True, "top_logprobs": 20}
        return cache_key("openai-logprobs", self.config.endpoint, body), body

    def answer_value(self, body: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        """What the cache keeps of a chat completions response body (raises KeyError, IndexError
        or TypeError for a malformed one)."""
        choice = data["choices"][0]
        usage = data.get("usage") or {}
        if isinstance(usage.get("prompt_tokens"), int) and isinstance(usage.get("completion_tokens"), int):
            value = {"prompt_tokens": usage["prompt_tokens"], "completion_tokens": usage["completion_tokens"]}
        else:  # a server that does not say what it billed: the ledger and the cap assume the most it could
            value = {"prompt_tokens": prompt_tokens_upper_bound(body.get("messages", [])),
                     "completion_tokens": int(body.get("max_tokens") or 0), "usage_estimated": True}
        value["billing"] = self.tier
        if body.get("logprobs"):
            content = ((choice.get("logprobs") or {}).get("content") or [{}])[0]
            return {**value, "top": {item["token"]: item["logprob"] for item in content.get("top_logprobs", [])}}
        return {**value, "text": choice["message"].get("content") or "", "finish_reason": choice.get("finish_reason") or "stop"}

    def cached_answer(self, key: str) -> dict[str, Any] | None:
        hit = self.cache.get(key) if self.cache is not None else None
        if hit is None:
            return None
        if "top" not in hit and "text" not in hit:  # a logprobs entry written before values carried usage
            hit = {"top": hit, "prompt_tokens": 0, "completion_tokens": 0}
        self._count("cache_hits")
        if self._first_use(key, hit):
            self.budget.add_cached(self.cost_of(hit))
        return {**hit, "cached": True}

    def _first_use(self, key: str, value: dict[str, Any]) -> bool:
        """Count an answer into usage once per backend (prefetch + generate serve it twice)."""
        with self._lock:
            if key in self._counted:
                return False
            self._counted.add(key)
            self.usage["calls"] += 1
            self.usage["prompt_tokens"] += int(value.get("prompt_tokens", 0))
            self.usage["completion_tokens"] += int(value.get("completion_tokens", 0))
            return True

    @property
    def cost_usd(self) -> float:
        """What every answer this backend handed out cost (cached ones at their billed rate)."""
        return self.budget.cached_usd + self.budget.paid_usd

    def _answer(self, key: str, body: dict[str, Any]) -> dict[str, Any]:
        if (hit := self.cached_answer(key)) is not None:
            return hit
        data, held = self._post(body, self.worst_case_usd(body))
        value = self.answer_value(body, data)
        if self.cache is not None:
            self.cache.put(key, value)  # committed before anything else can fail
        self.budget.settle(held, self.cost_of(value))
        self._first_use(key, value)
        return {**value, "cached": False}

    def answer_all(self, jobs: Sequence[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
        """The answer to every (cache key, body), in order: from the cache, else requested with
        bounded concurrency. Every cached answer is counted into the budget before the first
        request goes out, so the cap sees what the stage has paid already, in any order."""
        hits = {key: hit for key, _ in jobs if (hit := self.cached_answer(key)) is not None}
        missing = list({key: body for key, body in jobs if key not in hits}.items())  # one request per key
        pool = ThreadPoolExecutor(max_workers=max(1, self.config.max_concurrency))
        futures = {key: pool.submit(self._answer, key, body) for key, body in missing}
        try:
            answers = {key: future.result() for key, future in futures.items()}
        except BaseException:
            # a fatal error (or the budget cap) stops the run: requests not yet sent are never sent
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return [hits[key] if key in hits else answers[key] for key, _ in jobs]

    def prefetch(self, calls: Sequence[tuple[Sequence[Messages], SamplingParams]]) -> None:
        """Before a stage's first chunk: count every cached answer of its later `generate` calls
        into the budget, so the cap sees what an earlier attempt paid before anything is sent
        (the batch backend answers them all here)."""
        for prompts, params in calls:
            for prompt in prompts:
                for index in range(params.n):
                    self.cached_answer(self.chat_request(list(prompt), params, index)[0])

    def generate(self, prompts: Sequence[Messages], params: SamplingParams) -> list[Completion]:
        # one request per sample (n=1 each): each is cached on its own, and servers that
        # ignore `n` or bill it differently behave the same
        if any(is_prefilled(p) for p in prompts):
            # the chat completions API has no portable "continue this assistant message"
            raise ValueError(f"the {self.config.backend} backend cannot continue a prefilled assistant message "
                             "(template-guided synthesis, evalplus chat prompts): use transformers or vllm")
        jobs = [self.chat_request(list(prompts[p]), params, j) for p in range(len(prompts)) for j in range(params.n)]
        samples = self.answer_all(jobs)
        results = []
        for p in range(len(prompts)):
            mine = samples[p * params.n : (p + 1) * params.n]
            results.append(
                Completion(
                    texts=[s["text"] for s in mine],
                    prompt_tokens=max(s["prompt_tokens"] for s in mine),
                    completion_tokens=[s["completion_tokens"] for s in mine],
                    finish_reasons=[s["finish_reason"] for s in mine],
                    cached=all(s["cached"] for s in mine),
                )
            )
        return results

    def next_token_logprobs(self, prompts: Sequence[Messages], tokens: Sequence[str]) -> list[list[float]]:
        """From the top-20 logprobs of the first generated token; tokens outside the top 20
        get -inf (probability 0)."""
        answers = self.answer_all([self.logprobs_request(messages) for messages in prompts])
        return [[answer["top"].get(token, float("-inf")) for token in tokens] for answer in answers]

    def fill_choices(self, prompts, parts, choices):
        raise NotImplementedError(
            "forced template scoring (score.mode: forced, or score.expected) needs the transformers backend; "
            "the openai backend supports score.mode: generate"
        )
