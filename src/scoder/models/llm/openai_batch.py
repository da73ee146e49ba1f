"""OpenAI's Batch API as a backend (`backend: openai-batch`): the same requests, cache keys and
answers as the synchronous backend, at the batch rate (half the list price), answered within
the completion window instead of at once.

Flow for the requests a call needs that the response cache does not hold:
upload a JSONL file of requests (POST /files, purpose "batch"), create a batch (POST /batches),
poll it (GET /batches/{id}), download its output and error files (GET /files/{id}/content),
and map every line back to its request by `custom_id` (the request's cache key).

Never paying twice. Batch ids and their state live in a state file under
`<cache dir>/batches/` (one per endpoint + model), written atomically at every transition:
- before a batch is created, the state records the submission's tag (a hash of its requests
  and attempt), and the batch carries that tag in its metadata; a process killed between
  creating the batch and saving its id finds it again by listing the batches, so nothing is
  created twice;
- a rerun waits for the batches already submitted instead of submitting their requests again;
- answers go into the response cache before the batch is marked collected, so a kill during
  download only downloads again (downloads are free).
Per-request errors (an error line, a non-200 status, a request missing from an expired or
failed batch) are counted and the request is retried in a later batch, up to
`batch_max_attempts` batches. The budget cap holds each batch's worst case from before it is
created until its results are downloaded.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import logging
import time
from pathlib import Path
from typing import Any, Iterator, Sequence
from urllib.parse import urlparse

from scoder.core.cache import ResponseCache, cache_key, default_cache_dir
from scoder.core.io import write_json
from scoder.models.llm.base import LLMConfig, Messages, SamplingParams, is_prefilled
from scoder.models.llm.openai_backend import EndpointError, OpenAICompatibleLLM

log = logging.getLogger(__name__)

TERMINAL = {"completed", "failed", "expired", "cancelled"}


class BatchState:
    """The persisted state of one endpoint + model's batches (JSON, atomic writes, one
    process at a time through an exclusive lock on a side file)."""

    def __init__(self, path: Path):
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.data: dict[str, Any] = {"batches": {}, "submitting": {}, "attempts": {}, "errors": {}}

    @contextlib.contextmanager
    def locked(self) -> Iterator["BatchState"]:
        with open(self.path.with_suffix(".lock"), "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # a second stage on the same model waits for the first
            if self.path.exists():
                try:
                    self.data = json.loads(self.path.read_text(encoding="utf-8"))
                except ValueError as exc:
                    raise RuntimeError(f"batch state file {self.path} is unreadable ({exc}); it holds the ids of "
                                       "submitted batches: repair it rather than deleting it") from None
            for key in ("batches", "submitting", "attempts", "errors"):
                self.data.setdefault(key, {})
            yield self

    def save(self) -> None:
        write_json(self.path, self.data)


class OpenAIBatchLLM(OpenAICompatibleLLM):
    tier = "batch"

    def __init__(self, config: LLMConfig, cache: ResponseCache | None = None, session=None,
                 state_dir: str | Path | None = None):
        if cache is None:
            raise ValueError("the openai-batch backend needs the response cache (use_cache: true): batch results "
                             "reach the stage through it")
        super().__init__(config, cache, session)
        path = urlparse(self.base_url).path.rstrip("/")
        self.batch_endpoint = f"{path}/chat/completions"  # the url each request line names, e.g. /v1/chat/completions
        name = cache_key("batch-state", self.base_url, config.model)[:16]
        self.state = BatchState(Path(state_dir or default_cache_dir() / "batches") / f"{name}.json")
        self.stats.update(batches_created=0, batches_adopted=0, batch_polls=0, downloads=0, request_errors=0,
                          foreign_lines=0)

    # --- HTTP -----------------------------------------------------------------------------
    def _json(self, method: str, path: str, **kwargs) -> dict[str, Any]:
        response, _ = self._send(method, self.base_url + path, check=lambda r: r.json()["id"], **kwargs)
        return response.json()

    def _upload(self, lines: list[str]) -> str:
        payload = ("\n".join(lines) + "\n").encode("utf-8")
        response, _ = self._send("POST", self.base_url + "/files", check=lambda r: r.json()["id"],
                                 data={"purpose": "batch"}, files={"file": ("scoder-batch.jsonl", io.BytesIO(payload))})
        return response.json()["id"]

    def _content(self, file_id: str) -> str:
        response, _ = self._send("GET", f"{self.base_url}/files/{file_id}/content", check=lambda r: r.text)
        self._count("downloads")
        return response.text

    def _find_by_tag(self, tag: str) -> dict[str, Any] | None:
        after = None
        while True:
            params = {"limit": 100, **({"after": after} if after else {})}
            response, _ = self._send("GET", self.base_url + "/batches", check=lambda r: r.json()["data"], params=params)
            page = response.json()
            for batch in page["data"]:
                if (batch.get("metadata") or {}).get("scoder_tag") == tag:
                    return batch
            if not page.get("has_more") or not page["data"]:
                return None
            after = page["data"][-1]["id"]

    # --- submission -------------------------------------------------------------------------
    def _create(self, state: BatchState, tag: str, keys: list[str], bodies: dict[str, dict]) -> str:
        """Create the batch of `keys` exactly once, even across kills (see the module doc);
        returns its id."""
        entry = state.data["submitting"].get(tag)
        batch = None
        if entry is None:  # a fresh submission
            entry = state.data["submitting"][tag] = {"keys": keys, "input_file_id": None}
            state.save()
            lines = [json.dumps({"custom_id": k, "method": "POST", "url": self.batch_endpoint, "body": bodies[k]},
                                ensure_ascii=False, sort_keys=True) for k in keys]
            entry["input_file_id"] = self._upload(lines)
            state.save()  # from here on a batch may exist: a restart looks for it before creating one
        else:  # interrupted after the upload: the batch may have been created
            batch = self._find_by_tag(tag)
            if batch is not None:
                self._count("batches_adopted")
                log.info("batch %s found again by its tag (created before a restart): not submitted twice", batch["id"])
        if batch is None:
            batch = self._create_once(tag, entry["input_file_id"])
            self._count("batches_created")
            log.info("batch %s created: %d request(s)", batch["id"], len(entry["keys"]))
        state.data["batches"][batch["id"]] = {"tag": tag, "keys": entry["keys"], "status": batch.get("status", "validating"),
                                              "input_file_id": entry["input_file_id"], "collected": False}
        del state.data["submitting"][tag]
        state.save()
        return batch["id"]

    def _create_once(self, tag: str, input_file_id: str) -> dict[str, Any]:
        """POST /batches, never blindly retried: a create whose answer was lost may have landed,
        so before each retry the batches are searched for its tag."""
        body = {"input_file_id": input_file_id, "endpoint": self.batch_endpoint,
                "completion_window": self.config.batch_completion_window, "metadata": {"scoder_tag": tag}}
        problem = None
        for attempt in range(self.config.max_retries + 1):
            if attempt:
                time.sleep(min(self.config.backoff_max_s, self.config.backoff_base_s * 2 ** (attempt - 1)))
                if (found := self._find_by_tag(tag)) is not None:
                    return found
            try:
                response, _ = self._send("POST", self.base_url + "/batches", check=lambda r: r.json()["id"], retries=0,
                                         json=body)
                return response.json()
            except EndpointError as exc:
                if "answered HTTP" in str(exc):  # a 4xx: the request itself is wrong
                    raise
                problem = exc
        raise EndpointError(f"creating a batch failed {self.config.max_retries + 1} times: {problem}")

    @staticmethod
    def _tag(keys: Sequence[str], attempts: dict[str, int]) -> str:
        digest = hashlib.sha256()
        for key in keys:
            digest.update(f"{key}:{attempts.get(key, 0)}\n".encode())
        return digest.hexdigest()[:32]

    # --- collection -------------------------------------------------------------------------
    def _collect(self, state: BatchState, batch_id: str, batch: dict[str, Any], bodies: dict[str, dict]) -> float:
        """Download a finished batch's answers into the cache and count its failures; returns
        the USD it billed."""
        entry = state.data["batches"][batch_id]
        entry_keys = set(entry["keys"])
        answered: set[str] = set()
        billed = 0.0
        for file_field in ("output_file_id", "error_file_id"):
            if not batch.get(file_field):
                continue
            for number, line in enumerate(self._content(batch[file_field]).splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    key = record["custom_id"]
                except (ValueError, KeyError, TypeError):
                    log.warning("batch %s: line %d of its %s is not a result record; ignored", batch_id, number, file_field)
                    continue
                if key not in entry_keys:  # not a request of this batch: never let it answer another's
                    log.warning("batch %s: line %d of its %s answers %s, which it was not sent; ignored", batch_id,
                                number, file_field, str(key)[:80])
                    self._count("foreign_lines")
                    continue
                response = record.get("response") or {}
                problem = None
                if record.get("error"):
                    problem = f"error {record['error']}"
                elif response.get("status_code") != 200:
                    problem = f"HTTP {response.get('status_code')}: {str(response.get('body'))[:200]}"
                else:
                    try:
                        value = self.answer_value(bodies.get(key, {}), response["body"])
                    except (KeyError, IndexError, TypeError):
                        problem = "malformed response body"
                if problem is not None:
                    self._failed(state, key, f"batch {batch_id}: {problem}")
                    answered.add(key)
                    continue
                if key not in answered:
                    self.cache.put(key, value)
                    billed += self.cost_of(value) if key in bodies else 0.0  # what this stage's requests cost
                    answered.add(key)
        missing = [k for k in entry["keys"] if k not in answered]
        for key in missing:  # a failed, expired or cancelled batch leaves requests unanswered
            self._failed(state, key, f"batch {batch_id} ended '{batch.get('status')}' without answering it")
        entry.update(collected=True, status=batch.get("status"), output_file_id=batch.get("output_file_id"),
                     error_file_id=batch.get("error_file_id"))
        state.save()
        return billed

    def _failed(self, state: BatchState, key: str, problem: str) -> None:
        self._count("request_errors")
        state.data["attempts"][key] = state.data["attempts"].get(key, 0) + 1
        state.data["errors"][key] = problem

    # --- the driver -------------------------------------------------------------------------
    def answer_all(self, jobs: Sequence[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
        answers: dict[str, dict[str, Any]] = {}
        bodies: dict[str, dict[str, Any]] = {}
        for key, body in jobs:
            if key in answers or key in bodies:
                continue
            hit = self.cached_answer(key)
            if hit is not None:
                answers[key] = hit
            else:
                bodies[key] = body
        if bodies:
            with self.state.locked() as state:
                self._run_batches(state, bodies)
            for key in bodies:
                value = self.cache.get(key)
                self._first_use(key, value)  # paid now: the budget settled it when its batch came back
                answers[key] = {**value, "cached": False}
        return [answers[key] for key, _ in jobs]

    def prefetch(self, calls: Sequence[tuple[Sequence[Messages], SamplingParams]]) -> None:
        """Send the requests of many later `generate` calls as one batch run, so a stage's
        chunks are answered together (one batch, not one per chunk, each waiting its turn);
        the calls themselves then come from the cache."""
        jobs = [self.chat_request(list(prompt), params, j) for prompts, params in calls for prompt in prompts
                for j in range(params.n)]
        if any(is_prefilled(prompt) for prompts, _ in calls for prompt in prompts):
            raise ValueError("the openai-batch backend cannot continue a prefilled assistant message: use transformers or vllm")
        self.answer_all(jobs)

    def _run_batches(self, state: BatchState, bodies: dict[str, dict[str, Any]]) -> None:
        wanted = set(bodies)
        for tag, entry in list(state.data["submitting"].items()):
            if entry["input_file_id"] is None:  # killed before its file was uploaded: nothing was submitted
                del state.data["submitting"][tag]
                state.save()
            elif wanted & set(entry["keys"]):
                self._create(state, tag, entry["keys"], bodies)
        max_attempts = max(1, self.config.batch_max_attempts)
        held: dict[str, float] = {}  # batch id -> budget held until it is collected
        while True:
            pending = {k for k in wanted if self.cache.get(k) is None}
            if not pending:
                return
            exhausted = sorted(k for k in pending if state.data["attempts"].get(k, 0) >= max_attempts)
            if exhausted:
                raise EndpointError(f"{len(exhausted)} request(s) failed in {max_attempts} batches; request "
                                    f"{exhausted[0]}: {state.data['errors'].get(exhausted[0])}")
            # batches (of this or an earlier process) that hold wanted requests: wait for them, never resubmit
            live = self._live(state, wanted)
            for batch_id, entry in live.items():
                if batch_id not in held:  # submitted before this process: its cost is committed already
                    held[batch_id] = self.budget.hold(sum(self.worst_case_usd(bodies[k]) for k in entry["keys"] if k in bodies))
            fresh = sorted(pending - {k for entry in live.values() for k in entry["keys"]})
            if fresh:
                self._submit_within_budget(state, fresh, bodies, held, waiting=bool(live))
                live = self._live(state, wanted)
            self._poll(state, live, bodies, held)

    @staticmethod
    def _live(state: BatchState, wanted: set[str]) -> dict[str, dict]:
        return {bid: b for bid, b in state.data["batches"].items() if not b["collected"] and wanted & set(b["keys"])}

    def _submit_within_budget(self, state: BatchState, fresh: list[str], bodies: dict[str, dict], held: dict[str, float],
                              waiting: bool) -> None:
        """Submit the longest prefix of `fresh` whose worst case fits in the budget (and in one
        batch file); with nothing that fits and nothing in flight, stop at the cap."""
        chunk, worst = [], 0.0
        cap = self.budget.cap_usd
        for key in fresh[: max(1, self.config.batch_max_requests)]:
            cost = self.worst_case_usd(bodies[key])
            if cap is not None and self.budget.committed_usd + worst + cost > cap + 1e-12:
                break
            chunk.append(key)
            worst += cost
        if not chunk:
            if not waiting:  # nothing in flight will free budget: this raises BudgetExceeded
                self.budget.reserve(self.worst_case_usd(bodies[fresh[0]]), remaining_requests=len(fresh))
            return
        self.budget.reserve(worst, remaining_requests=len(fresh))
        try:
            batch_id = self._create(state, self._tag(chunk, state.data["attempts"]), chunk, bodies)
        except BaseException:
            self.budget.settle(worst, 0.0, answered=0)
            raise
        held[batch_id] = worst

    def _poll(self, state: BatchState, live: dict[str, dict], bodies: dict[str, dict], held: dict[str, float]) -> None:
        finished = False
        for batch_id in sorted(live):
            batch = self._json("GET", f"/batches/{batch_id}")
            self._count("batch_polls")
            counts = batch.get("request_counts") or {}
            log.info("batch %s: %s (%s of %s done, %s failed)", batch_id, batch.get("status"), counts.get("completed", "?"),
                     counts.get("total", "?"), counts.get("failed", 0))
            if batch.get("status") in TERMINAL:
                billed = self._collect(state, batch_id, batch, bodies)
                answered = sum(1 for k in live[batch_id]["keys"] if k in bodies and self.cache.get(k) is not None)
                self.budget.settle(held.pop(batch_id, 0.0), billed, answered=answered)
                finished = True
            elif state.data["batches"][batch_id].get("status") != batch.get("status"):
                state.data["batches"][batch_id]["status"] = batch.get("status")
                state.save()
        if not finished and live:
            time.sleep(max(0.0, self.config.batch_poll_s))
