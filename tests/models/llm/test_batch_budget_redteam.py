"""Adversarial tests of the promises in docs/cost.md (Batch API teacher, budget caps).

Written against the documented behaviour only, with hostile fakes: a batch service that
reorders, duplicates and injects output lines, expires / fails / cancels batches, answers 500
on downloads and listings, paginates its batch list, loses create answers, leaves out usage,
and bills every request at its documented worst case; and clients killed (SIGKILL) at every
step of the batch flow. Everything is counted at the fake.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from fake_openai import FakeOpenAI, answer_for
from fake_openai_batch import FakeBatchAPI
from scoder.core.budget import BudgetExceeded
from scoder.core.cache import ResponseCache
from scoder.core.prices import Price, prompt_tokens_upper_bound
from scoder.models.llm.base import LLMConfig, SamplingParams, load_llm

MAX_TOKENS = 100
BATCH_PRICE = Price(1.25, 5.0)  # gpt-4o at the Batch API rate (prices.TABLE)
SYNC_PRICE = Price(2.50, 10.0)  # gpt-4o at the list rate
EPS = 1e-12


# --- a hostile fake ------------------------------------------------------------------------
class RedBatch(FakeBatchAPI):
    """FakeBatchAPI plus faults; also serves /chat/completions (the synchronous route) on the
    same URL, so both backends can share one endpoint and one cache."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.attempts: Counter = Counter()  # prompt text -> times the service processed it
        self.always_fail: set[str] = set()  # prompt texts that always end in the error file
        self.fail_once_prompts: set[str] = set()  # first attempt ends in the error file
        self.status_once: dict[str, int] = {}  # prompt -> non-200 status in the OUTPUT file, first attempt
        self.reverse_output = False
        self.duplicate_lines = False
        self.extra_lines: list = []  # dicts / raw strings put at the top of every output file
        self.inject_first_batch_keys_into_later = False  # later outputs carry wrong answers for batch 1's ids
        self.end_plan: dict[int, tuple[str, int]] = {}  # creation index -> (expired|cancelled|failed, answered first)
        self.worst_case_billing = False  # usage = the documented upper bound, completion = max_tokens
        self.omit_usage = False
        self.reject_duplicate_ids = True  # as OpenAI: custom_id must be unique in a batch file
        self.content_500 = 0
        self.truncate_content = 0
        self.hold_from: int | None = None  # batches created from this index on answer nothing until hold_release
        self.hold_release = threading.Event()
        self.list_500 = 0
        self.list_calls = 0
        self.page_max: int | None = None
        self.foreign_on_create = 0  # other jobs' batches created right after ours
        self.gates: dict[str, threading.Event] = {}
        self.reached: defaultdict = defaultdict(threading.Event)
        self.skip_create_after_gate = False
        self.create_posts = 0
        self.uploads_posted = 0
        # the synchronous route
        self.chat_requests = 0
        self.chat_faults: list[str] = []
        self.slow_s = 1.0
        self.sync_billed_usd = 0.0
        self.sync_served = 0
        self.sync_paid: Counter = Counter()
        self.sync_in_handler = 0
        base = self.httpd.RequestHandlerClass
        server = self

        class Handler(base):
            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                if self.path.endswith("/chat/completions"):
                    return server._chat(self, json.loads(raw))
                if self.path.endswith("/files"):
                    with server.lock:
                        server.uploads_posted += 1
                    server._gate("upload")
                    result = server._upload(self.headers.get("Content-Type", ""), raw)
                    server._gate("upload_after")
                    return self._send(200, result)
                if self.path.endswith("/batches"):
                    with server.lock:
                        server.create_posts += 1
                    server._gate("create")
                    if server.skip_create_after_gate:
                        server.skip_create_after_gate = False
                        self.close_connection = True
                        return  # the request never reached the service
                    batch = server._create(json.loads(raw))
                    if server.foreign_on_create:
                        server.add_foreign(server.foreign_on_create)
                    server._gate("create_after")
                    if server.drop_create_answer:
                        server.drop_create_answer = False
                        self.close_connection = True
                        return
                    return self._send(200, batch)
                self._send(404, {"error": f"no route {self.path}"})

            def do_GET(self):  # noqa: N802
                path = self.path.partition("?")[0]
                parts = path.rstrip("/").split("/")
                if parts[-1] == "content":
                    with server.lock:
                        fault = server.content_500 > 0
                        if fault:
                            server.content_500 -= 1
                    if fault:
                        return self._send(500, {"error": {"message": "download boom"}})
                    server._gate("content")
                    with server.lock:
                        cut = server.truncate_content > 0
                        if cut:
                            server.truncate_content -= 1
                    if cut:  # the connection drops half-way through the file
                        data = server.files.get(parts[-2], b"")
                        self.send_response(200)
                        self.send_header("Content-Type", "application/jsonl")
                        self.send_header("Content-Length", str(len(data)))
                        self.end_headers()
                        self.wfile.write(data[: len(data) // 2])
                        self.wfile.flush()
                        self.close_connection = True
                        return
                if parts[-1] == "batches":
                    server._gate("list")
                    with server.lock:
                        server.list_calls += 1
                        fault = server.list_500 > 0
                        if fault:
                            server.list_500 -= 1
                    if fault:
                        return self._send(500, {"error": {"message": "list boom"}})
                return super().do_GET()

        self.httpd.RequestHandlerClass = Handler

    # --- controls ----------------------------------------------------------------------------
    def _gate(self, step):
        event = self.gates.get(step)
        if event is not None:
            self.reached[step].set()
            event.wait(120)

    def open_gates(self):
        gates, self.gates = self.gates, {}
        for event in gates.values():
            event.set()

    def add_foreign(self, k):
        for i in range(k):
            with self.lock:
                fid = f"file-{len(self.files) + 1}"
                line = {"custom_id": f"foreign-{len(self.files)}-{i}", "method": "POST", "url": "/v1/chat/completions",
                        "body": {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "max_tokens": 5}}
                self.files[fid] = (json.dumps(line) + "\n").encode()
            FakeBatchAPI._create(self, {"input_file_id": fid, "endpoint": "/v1/chat/completions",
                                        "completion_window": "24h", "metadata": {"job": "someone-else"}})

    def _list(self, limit, after):
        if self.page_max:
            limit = min(limit, self.page_max)
        return super()._list(limit, after)

    # --- the batch service -------------------------------------------------------------------
    def _answer(self, request):
        body, key = request["body"], request["custom_id"]
        prompt = body["messages"][-1]["content"]
        self.attempts[prompt] += 1
        first = self.attempts[prompt] == 1
        if prompt in self.always_fail:
            return None, {"id": f"err-{key[:8]}", "custom_id": key, "response": None,
                          "error": {"code": "server_error", "message": f"always broken {prompt[:20]}"}}
        if prompt in self.fail_once_prompts and first:
            return None, {"id": f"err-{key[:8]}", "custom_id": key,
                          "response": {"status_code": 500, "body": {"error": {"message": "boom"}}}, "error": None}
        if prompt in self.status_once and first:
            return {"id": f"res-{key[:8]}", "custom_id": key, "error": None,
                    "response": {"status_code": self.status_once[prompt], "request_id": "r",
                                 "body": {"error": {"message": "rate limited", "type": "requests"}}}}, None
        words = answer_for(prompt).split(" ")
        finish = "stop"
        if len(words) > body.get("max_tokens", 10**9):
            words, finish = words[: body["max_tokens"]], "length"
        text = " ".join(words)
        if self.worst_case_billing:
            usage = {"prompt_tokens": prompt_tokens_upper_bound(body["messages"]), "completion_tokens": body["max_tokens"]}
        else:
            usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": len(text.split())}
        self.billed[key] += 1
        self.billed_usd += usage["prompt_tokens"] / 1e6 * self.price[0] + usage["completion_tokens"] / 1e6 * self.price[1]
        out_body = {"id": f"chatcmpl-{key[:8]}", "object": "chat.completion", "model": body["model"],
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}]}
        if not self.omit_usage:
            out_body["usage"] = usage
        return {"id": f"res-{key[:8]}", "custom_id": key, "error": None,
                "response": {"status_code": 200, "request_id": f"req-{key[:8]}", "body": out_body}}, None

    def _finish(self, batch_id):
        index = self.order.index(batch_id)
        batch = self.batches[batch_id]
        results = list(self._results[batch_id])
        if self.reverse_output:
            results.reverse()
        if self.duplicate_lines:
            results = [r for r in results for _ in (0, 1)]
        lines = [x if isinstance(x, str) else json.dumps(x) for x in self.extra_lines]
        if self.inject_first_batch_keys_into_later and index > 0:
            for request in self._requests[self.order[0]]:
                lines.append(json.dumps({"id": "evil", "custom_id": request["custom_id"], "error": None, "response": {
                    "status_code": 200, "body": {"choices": [{"index": 0, "message": {"role": "assistant", "content": "CORRUPTED"},
                                                              "finish_reason": "stop"}], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}}}))
        lines += [json.dumps(r) for r in results]
        for field, rows in (("output_file_id", lines), ("error_file_id", [json.dumps(e) for e in self._errors[batch_id]])):
            if rows:
                file_id = f"file-{len(self.files) + 1}"
                self.files[file_id] = "".join(row + "\n" for row in rows).encode()
                batch[field] = file_id

    def _poll(self, batch_id):
        with self.lock:
            batch = self.batches.get(batch_id)
            if batch is None:
                return None
            index = self.order.index(batch_id)
            plan = self.end_plan.get(index)
            requests = self._requests[batch_id]
            if batch["status"] == "validating":
                ids = [r["custom_id"] for r in requests]
                if self.reject_duplicate_ids and len(set(ids)) != len(ids):
                    batch["status"] = "failed"
                    batch["errors"] = {"object": "list", "data": [{"code": "duplicate_custom_id", "message": "custom_id must be unique"}]}
                elif plan and plan[0] == "failed":
                    batch["status"] = "failed"
                    batch["errors"] = {"object": "list", "data": [{"code": "invalid_request", "message": "validation failed"}]}
                else:
                    batch["status"] = "in_progress"
            elif batch["status"] == "in_progress":
                counts = batch["request_counts"]
                done = counts["completed"] + counts["failed"]
                limit = len(requests) if self.release.is_set() else min(len(requests), self.hold_after)
                if plan:
                    limit = min(limit, plan[1])
                if self.hold_from is not None and index >= self.hold_from and not self.hold_release.is_set():
                    limit = 0
                for request in requests[done : min(limit, done + self.per_poll)]:
                    result, error = self._answer(request)
                    if result:
                        self._results[batch_id].append(result)
                        counts["completed"] += 1
                    else:
                        self._errors[batch_id].append(error)
                        counts["failed"] += 1
                done = counts["completed"] + counts["failed"]
                if plan and done >= plan[1] and done < len(requests):
                    batch["status"] = plan[0]
                    self._finish(batch_id)
                elif done == len(requests):
                    batch["status"] = "completed"
                    self._finish(batch_id)
            return json.loads(json.dumps(batch))

    # --- the synchronous route -----------------------------------------------------------------
    def _chat(self, handler, body):
        with self.lock:
            self.chat_requests += 1
            self.sync_in_handler += 1
            fault = self.chat_faults.pop(0) if self.chat_faults else None
        try:
            if fault == "slow":
                time.sleep(self.slow_s)
            if fault == "500":
                return handler._send(500, {"error": {"message": "boom"}})
            messages = body["messages"]
            prompt = messages[-1]["content"]
            n = body.get("n") or 1
            max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
            text = answer_for(prompt)
            if self.worst_case_billing:
                usage = {"prompt_tokens": prompt_tokens_upper_bound(messages), "completion_tokens": n * max_tokens}
            else:
                usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": n * len(text.split())}
            with self.lock:  # billed when served, whether or not the client still listens
                self.sync_served += 1
                self.sync_paid[prompt] += 1
                self.sync_billed_usd += SYNC_PRICE.cost(usage["prompt_tokens"], usage["completion_tokens"])
            payload = {"choices": [{"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                                   for i in range(n)], "usage": usage}
            if self.omit_usage:
                del payload["usage"]
            handler._send(200, payload)
        finally:
            with self.lock:
                self.sync_in_handler -= 1


# --- helpers -------------------------------------------------------------------------------
def cfg(url, backend="openai-batch", **kw):
    base = dict(backend=backend, model="gpt-4o", endpoint=url, api_key_env="X", batch_poll_s=0.01, max_retries=2,
                backoff_base_s=0.01, backoff_max_s=0.05, timeout_s=10.0)
    base.update(kw)
    return base


def make(url, cache_path, **kw):
    return load_llm(LLMConfig(**cfg(url, **kw)), ResponseCache(cache_path))


def prompts(k, tag="p", multibyte=True):
    out = []
    for i in range(k):
        extra = ("ü漢字🙂" * (i % 3 + 1)) if multibyte else ""
        out.append([{"role": "system", "content": "You write programming problems."},
                    {"role": "user", "content": f"{tag} {i} {extra}" + " word" * i}])
    return out


def worst(messages, price=BATCH_PRICE, max_tokens=MAX_TOKENS):
    return price.cost(prompt_tokens_upper_bound(messages), max_tokens)


def sp(n=1):
    return SamplingParams(max_tokens=MAX_TOKENS, n=n)


def sync_reference(ps, n, tmp_path):
    """The synchronous backend's texts for the same prompts, on the stock fake."""
    with FakeOpenAI() as server:
        llm = make(server.url, tmp_path / "sync-ref.sqlite", backend="openai")
        return [c.texts for c in llm.generate(ps, sp(n))]


@pytest.fixture()
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("SCODER_CACHE_DIR", str(tmp_path / "scache"))
    monkeypatch.setenv("X", "sk-test")
    return tmp_path


CHILD = r"""
import json, sys
from scoder.core.cache import ResponseCache
from scoder.models.llm.base import LLMConfig, SamplingParams, load_llm
config, ps, cache, n = json.loads(sys.argv[1])
llm = load_llm(LLMConfig(**config), ResponseCache(cache))
llm.generate(ps, SamplingParams(max_tokens=%d, n=n))
print("CHILD-DONE", flush=True)
""" % MAX_TOKENS


def run_and_kill(config, ps, cache_path, until, n=1, timeout=60):
    """Run generate in a child process and SIGKILL it once `until()` holds."""
    proc = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps([config, ps, str(cache_path), n])],
                            env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + timeout
    try:
        while not until():
            if proc.poll() is not None:
                out, err = proc.communicate()
                pytest.fail(f"child ended before the kill point (rc {proc.returncode}): {out[-2000:]} {err[-3000:]}")
            if time.time() > deadline:
                pytest.fail("kill point never reached")
            time.sleep(0.005)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    return proc


def wait_until(cond, timeout=10):
    deadline = time.time() + timeout
    while not cond():
        assert time.time() < deadline, "condition never held"
        time.sleep(0.01)


def expect_texts(ps, out, n=1):
    return [c.texts for c in out] == [[answer_for(p[-1]["content"])] * n for p in ps]


# === promise 1: nothing submitted or paid twice across kills ==================================
@pytest.mark.parametrize("step", ["upload", "upload_after", "create_dropped", "create_late", "create_after",
                                  "partial", "content"])
def test_kill_at_each_step_then_rerun_pays_each_request_once(env, step):
    ps = prompts(6)
    cache_path = env / "c.sqlite"
    with RedBatch(per_poll=1) as fake:
        config = cfg(fake.url)
        gate = {"create_dropped": "create", "create_late": "create"}.get(step, step)
        if step == "partial":
            fake.release.clear()
            fake.hold_after = 3
            until = lambda: sum(fake.billed.values()) >= 3  # noqa: E731
        else:
            fake.gates[gate] = threading.Event()
            until = fake.reached[gate].is_set
        run_and_kill(config, ps, cache_path, until)
        if step == "create_dropped":
            fake.skip_create_after_gate = True
        fake.open_gates()
        fake.release.set()
        if step == "create_late":
            wait_until(lambda: fake.created == 1)
        time.sleep(0.1)
        llm = make(fake.url, cache_path)
        out = llm.generate(ps, sp())
        assert expect_texts(ps, out)
        assert fake.created == 1, f"{fake.created} batches created"
        assert len(fake.billed) == 6 and max(fake.billed.values()) == 1, dict(fake.billed)


def test_kill_after_create_then_rerun_with_more_prompts_pays_nothing_twice(env):
    """The stage grew (more seeds) between the kill and the rerun; the orphan batch must still
    be found, not resubmitted under a new tag."""
    ps = prompts(4)
    cache_path = env / "c.sqlite"
    with RedBatch() as fake:
        fake.gates["create_after"] = threading.Event()
        run_and_kill(cfg(fake.url), ps, cache_path, fake.reached["create_after"].is_set)
        fake.open_gates()
        more = ps + prompts(3, tag="extra")
        out = make(fake.url, cache_path).generate(more, sp())
        assert expect_texts(more, out)
        assert len(fake.billed) == 7 and max(fake.billed.values()) == 1, dict(fake.billed)


def test_kill_after_create_then_rerun_in_other_order_pays_nothing_twice(env):
    ps = prompts(4)
    cache_path = env / "c.sqlite"
    with RedBatch() as fake:
        fake.gates["create_after"] = threading.Event()
        run_and_kill(cfg(fake.url), ps, cache_path, fake.reached["create_after"].is_set)
        fake.open_gates()
        shuffled = ps[::-1]
        out = make(fake.url, cache_path).generate(shuffled, sp())
        assert expect_texts(shuffled, out)
        assert fake.created == 1 and max(fake.billed.values()) == 1, (fake.created, dict(fake.billed))


def test_lost_create_answer_with_the_tagged_batch_on_a_later_list_page(env):
    ps = prompts(5)
    with RedBatch() as fake:
        fake.drop_create_answer = True
        fake.foreign_on_create = 5  # five newer batches of other jobs push ours off page 1
        fake.page_max = 2
        llm = make(fake.url, env / "c.sqlite")
        out = llm.generate(ps, sp())
        assert expect_texts(ps, out)
        ours = [b for b in fake.batches.values() if b["metadata"].get("job") != "someone-else"]
        assert len(ours) == 1, f"{len(ours)} batches created for one run"
        assert max(fake.billed.values()) == 1


def test_lost_create_answer_while_the_list_endpoint_errors_never_creates_a_second_batch(env):
    ps = prompts(5)
    cache_path = env / "c.sqlite"
    with RedBatch() as fake:
        fake.drop_create_answer = True
        fake.list_500 = 10  # the search for the tag fails for a while
        try:
            make(fake.url, cache_path).generate(ps, sp())
        except BudgetExceeded:
            raise
        except Exception:
            pass  # giving up is fine; creating blindly is not
        assert fake.created == 1, f"{fake.created} batches created while the tag search failed"
        fake.list_500 = 0
        out = make(fake.url, cache_path).generate(ps, sp())
        assert expect_texts(ps, out)
        assert fake.created == 1 and max(fake.billed.values()) == 1


def test_kill_while_searching_for_the_tag_after_a_lost_create_answer(env):
    ps = prompts(5)
    cache_path = env / "c.sqlite"
    with RedBatch() as fake:
        fake.drop_create_answer = True
        fake.gates["list"] = threading.Event()
        run_and_kill(cfg(fake.url), ps, cache_path, fake.reached["list"].is_set)
        fake.open_gates()
        out = make(fake.url, cache_path).generate(ps, sp())
        assert expect_texts(ps, out)
        assert fake.created == 1 and max(fake.billed.values()) == 1, (fake.created, dict(fake.billed))


def test_a_download_cut_half_way_is_downloaded_again_not_paid_again(env):
    ps = prompts(8)
    with RedBatch() as fake:
        fake.truncate_content = 1
        try:
            make(fake.url, env / "c.sqlite").generate(ps, sp())
        except BudgetExceeded:
            raise
        except Exception:
            pass  # not retried in-run (a note, not a documented promise); the rerun must not pay
        out = make(fake.url, env / "c.sqlite").generate(ps, sp())
        assert expect_texts(ps, out)
        assert fake.created == 1 and max(fake.billed.values()) == 1, (fake.created, dict(fake.billed))


def test_download_500s_then_rerun_downloads_again_without_paying(env):
    ps = prompts(5)
    cache_path = env / "c.sqlite"
    with RedBatch() as fake:
        fake.content_500 = 2  # within max_retries
        out = make(fake.url, cache_path).generate(ps, sp())
        assert expect_texts(ps, out)
        fake.content_500 = 50  # more than any retry budget
        ps2 = prompts(3, tag="second")
        with pytest.raises(Exception):
            make(fake.url, cache_path).generate(ps2, sp())
        fake.content_500 = 0
        out2 = make(fake.url, cache_path).generate(ps2, sp())
        assert expect_texts(ps2, out2)
        assert fake.created == 2 and len(fake.billed) == 8 and max(fake.billed.values()) == 1


# === promise 2: failed requests are counted and retried =======================================
def _retry_case(env, setup, k=5, attempts=3, **kw):
    ps = prompts(k)
    with RedBatch() as fake:
        setup(fake, ps)
        llm = make(fake.url, env / "c.sqlite", batch_max_attempts=attempts, **kw)
        out = llm.generate(ps, sp())
        assert expect_texts(ps, out)
        return fake, llm


def test_error_line_is_counted_and_retried_in_a_later_batch(env):
    fake, llm = _retry_case(env, lambda f, ps: f.fail_once_prompts.update({ps[1][-1]["content"], ps[3][-1]["content"]}))
    assert llm.stats["request_errors"] == 2 and fake.created == 2
    assert max(fake.billed.values()) == 1


def test_non_200_line_in_the_output_file_is_not_an_answer(env):
    fake, llm = _retry_case(env, lambda f, ps: f.status_once.update({ps[2][-1]["content"]: 429}))
    assert llm.stats["request_errors"] == 1 and fake.created == 2


@pytest.mark.parametrize("status", ["expired", "cancelled"])
def test_requests_left_unanswered_by_an_ended_batch_are_retried(env, status):
    fake, llm = _retry_case(env, lambda f, ps: f.end_plan.update({0: (status, 2)}), k=5)
    assert fake.created == 2
    assert llm.stats["request_errors"] == 3, llm.stats
    assert len(fake.billed) == 5 and max(fake.billed.values()) == 1, dict(fake.billed)


def test_a_failed_batch_is_retried(env):
    fake, llm = _retry_case(env, lambda f, ps: f.end_plan.update({0: ("failed", 0)}), k=4)
    assert fake.created == 2 and llm.stats["request_errors"] == 4
    assert max(fake.billed.values()) == 1


def test_a_request_that_always_fails_stops_after_max_attempts_naming_it(env):
    ps = prompts(4)
    bad = ps[2][-1]["content"]
    with RedBatch() as fake:
        fake.always_fail.add(bad)
        llm = make(fake.url, env / "c.sqlite", batch_max_attempts=2)
        with pytest.raises(Exception) as info:
            llm.generate(ps, sp())
        assert not isinstance(info.value, BudgetExceeded)
        message = str(info.value)
        key = next(r["custom_id"] for lines in fake._requests.values() for r in lines if r["body"]["messages"][-1]["content"] == bad)
        assert fake.attempts[bad] == 2, f"tried {fake.attempts[bad]} times, batch_max_attempts=2"
        assert (key in message or key[:12] in message or bad in message), message
        assert "always broken" in message, message  # its last error
        # the others were paid and must be kept
        sync = make(fake.url, env / "c.sqlite", backend="openai")
        good = [p for p in ps if p[-1]["content"] != bad]
        assert expect_texts(good, sync.generate(good, sp()))
        assert fake.chat_requests == 0


def test_attempts_survive_a_kill(env):
    """A request that failed in batch 1, killed while batch 2 (its second attempt) is in
    flight: the rerun must not give it a third batch when batch_max_attempts=2."""
    ps = prompts(3)
    bad = ps[1][-1]["content"]
    cache_path = env / "c.sqlite"
    with RedBatch() as fake:
        fake.always_fail.add(bad)
        fake.hold_from = 1
        run_and_kill(cfg(fake.url, batch_max_attempts=2), ps, cache_path, lambda: fake.created >= 2)
        fake.hold_release.set()
        with pytest.raises(Exception) as info:
            make(fake.url, cache_path, batch_max_attempts=2).generate(ps, sp())
        assert not isinstance(info.value, BudgetExceeded)
        assert fake.attempts[bad] == 2 and fake.created == 2, (fake.attempts[bad], fake.created)
        assert "always broken" in str(info.value)


def test_a_request_left_out_of_expired_batches_every_time_is_an_error(env):
    ps = prompts(3)
    with RedBatch(per_poll=10) as fake:
        fake.end_plan = {0: ("expired", 2), 1: ("expired", 0), 2: ("expired", 0), 3: ("expired", 0)}
        llm = make(fake.url, env / "c.sqlite", batch_max_attempts=2)
        with pytest.raises(Exception) as info:
            llm.generate(ps, sp())
        assert not isinstance(info.value, BudgetExceeded)
        assert fake.created == 2, f"{fake.created} batches for batch_max_attempts=2"


# === promise 3: results map back by custom_id ================================================
def test_reordered_output_with_several_batches_and_n2_matches_the_sync_backend(env):
    ps = prompts(7)
    reference = sync_reference(ps, 2, env)
    with RedBatch(per_poll=3) as fake:
        fake.reverse_output = True
        out = make(fake.url, env / "c.sqlite", batch_max_requests=4).generate(ps, sp(2))
        assert [c.texts for c in out] == reference
        assert fake.created >= 4 and max(fake.billed.values()) == 1


def test_duplicate_and_unknown_lines_do_not_corrupt_answers(env):
    ps = prompts(5)
    reference = sync_reference(ps, 1, env)
    with RedBatch() as fake:
        fake.duplicate_lines = True
        fake.extra_lines = [{"id": "x", "custom_id": "f" * 64, "error": None, "response": {"status_code": 200, "body": {
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "CORRUPTED"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1}}}}]
        llm = make(fake.url, env / "c.sqlite")
        out = llm.generate(ps, sp())
        assert [c.texts for c in out] == reference
        assert fake.created == 1
        cache = ResponseCache(env / "c.sqlite")
        assert all("CORRUPTED" not in json.dumps(cache.get(k)) for k in fake.billed)


def test_a_later_batch_cannot_overwrite_an_earlier_batchs_answers(env):
    ps = prompts(4)
    reference = sync_reference(ps, 1, env)
    with RedBatch() as fake:
        fake.inject_first_batch_keys_into_later = True
        out = make(fake.url, env / "c.sqlite", batch_max_requests=2).generate(ps, sp())
        assert [c.texts for c in out] == reference
        again = make(fake.url, env / "c.sqlite", backend="openai").generate(ps, sp())
        assert [c.texts for c in again] == reference and fake.chat_requests == 0


def test_a_malformed_output_line_does_not_corrupt_answers(env):
    ps = prompts(4)
    reference = sync_reference(ps, 1, env)
    with RedBatch() as fake:
        fake.extra_lines = ['{"id": "x", "custom_id": "abc", "response": {"status_co']
        out = make(fake.url, env / "c.sqlite").generate(ps, sp())
        assert [c.texts for c in out] == reference


def test_stop_strings_give_the_sync_backends_texts(env):
    ps = prompts(4)
    params = SamplingParams(max_tokens=MAX_TOKENS, stop=["```", "We add"])
    with FakeOpenAI() as server:
        reference = [c.texts for c in make(server.url, env / "ref.sqlite", backend="openai").generate(ps, params)]
    with RedBatch() as fake:
        out = make(fake.url, env / "c.sqlite").generate(ps, params)
        assert [c.texts for c in out] == reference


def test_prefilled_prompts_are_refused_as_by_the_sync_backend(env):
    """The sync backend refuses a prefilled assistant message; the batch backend, whose
    requests are documented to be the same, must not pay for them either."""
    ps = [p + [{"role": "assistant", "content": f"[Problem Description] ünï {i}"}] for i, p in enumerate(prompts(3))]
    with RedBatch() as fake:
        with pytest.raises(ValueError):
            make(fake.url, env / "s.sqlite", backend="openai").generate(ps, sp())
        with pytest.raises(ValueError):
            make(fake.url, env / "c.sqlite").generate(ps, sp())
        assert fake.uploads_posted == 0 and fake.created == 0 and fake.chat_requests == 0


def test_many_duplicate_prompts_go_out_once_each(env):
    one = prompts(1, tag="same")
    ps = one * 10 + prompts(2)
    reference = sync_reference(ps, 1, env)
    with RedBatch() as fake:  # a file with a repeated custom_id fails validation, as on OpenAI
        out = make(fake.url, env / "c.sqlite").generate(ps, sp())
        assert [c.texts for c in out] == reference
        assert fake.created == 1 and len(fake.billed) == 3 and max(fake.billed.values()) == 1


# === promise 4: budget caps ===================================================================
@pytest.mark.parametrize("backend", ["openai", "openai-batch"])
@pytest.mark.parametrize("cap_kind", ["zero", "tiny"])
def test_caps_below_one_request_send_nothing(env, backend, cap_kind):
    ps = prompts(3)
    cap = 0.0 if cap_kind == "zero" else 0.5 * min(worst(p, SYNC_PRICE if backend == "openai" else BATCH_PRICE) for p in ps)
    with RedBatch() as fake:
        fake.worst_case_billing = True
        llm = make(fake.url, env / "c.sqlite", backend=backend, max_budget_usd=cap)
        with pytest.raises(BudgetExceeded):
            llm.generate(ps, sp())
        assert fake.chat_requests == 0 and fake.uploads_posted == 0 and fake.created == 0
        assert fake.billed_usd == 0 and fake.sync_billed_usd == 0


@pytest.mark.parametrize("n", [1, 2])
def test_sync_cap_exactly_a_worst_case_with_concurrency(env, n):
    ps = prompts(12)
    cap = sum(worst(p, SYNC_PRICE) for p in ps[:5])  # five requests' worst case, exactly
    with RedBatch() as fake:
        fake.worst_case_billing = True
        llm = make(fake.url, env / "c.sqlite", backend="openai", max_concurrency=8, max_budget_usd=cap)
        with pytest.raises(BudgetExceeded):
            llm.generate(ps, sp(n))
        wait_until(lambda: fake.sync_in_handler == 0)
        assert fake.sync_billed_usd <= cap + EPS, (fake.sync_billed_usd, cap, fake.sync_served)
        assert fake.sync_served >= 1


def test_sync_cap_with_many_duplicate_prompts(env):
    ps = prompts(1, tag="dup") * 12 + prompts(3)
    cap = 2 * worst(ps[-1], SYNC_PRICE)
    with RedBatch() as fake:
        fake.worst_case_billing = True
        llm = make(fake.url, env / "c.sqlite", backend="openai", max_concurrency=8, max_budget_usd=cap)
        try:
            llm.generate(ps, sp())
        except BudgetExceeded:
            pass
        wait_until(lambda: fake.sync_in_handler == 0)
        assert fake.sync_billed_usd <= cap + EPS, (fake.sync_billed_usd, cap, dict(fake.sync_paid))


def test_sync_cap_counts_timed_out_requests(env):
    ps = prompts(3, multibyte=False)
    w = max(worst(p, SYNC_PRICE) for p in ps)
    cap = 2.5 * w
    with RedBatch() as fake:
        fake.worst_case_billing = True
        fake.slow_s = 0.8
        fake.chat_faults = ["slow", "slow", "slow", "slow"]
        llm = make(fake.url, env / "c.sqlite", backend="openai", max_concurrency=1, timeout_s=0.2, max_retries=5,
                   max_budget_usd=cap)
        try:
            llm.generate(ps, sp())
        except BudgetExceeded:
            pass
        except Exception:
            pass
        time.sleep(0.2)
        wait_until(lambda: fake.sync_in_handler == 0, timeout=15)
        assert fake.sync_billed_usd <= cap + EPS, (fake.sync_billed_usd / w, "worst cases billed for a cap of 2.5")


def test_sync_cap_counts_timed_out_requests_with_concurrency(env):
    ps = prompts(8, multibyte=False)
    w = max(worst(p, SYNC_PRICE) for p in ps)
    cap = 5 * min(worst(p, SYNC_PRICE) for p in ps)
    with RedBatch() as fake:
        fake.worst_case_billing = True
        fake.slow_s = 0.6
        fake.chat_faults = ["slow"] * 4
        llm = make(fake.url, env / "c.sqlite", backend="openai", max_concurrency=4, timeout_s=0.15, max_retries=5,
                   max_budget_usd=cap)
        try:
            llm.generate(ps, sp())
        except Exception:
            pass
        time.sleep(0.2)
        wait_until(lambda: fake.sync_in_handler == 0, timeout=15)
        assert fake.sync_billed_usd <= cap + EPS, (fake.sync_billed_usd / w, cap / w, fake.sync_served)


def test_sync_without_usage_in_answers_keeps_the_worst_case(env):
    ps = prompts(6)
    cap = sum(worst(p, SYNC_PRICE) for p in ps[:2])
    with RedBatch() as fake:
        fake.worst_case_billing = True
        fake.omit_usage = True
        try:
            make(fake.url, env / "c.sqlite", backend="openai", max_concurrency=1, max_budget_usd=cap).generate(ps, sp())
        except Exception:
            pass
        wait_until(lambda: fake.sync_in_handler == 0)
        assert fake.sync_billed_usd <= cap + EPS, (fake.sync_billed_usd, cap, fake.sync_served)


@pytest.mark.parametrize("order", ["same", "reversed"])
def test_sync_rerun_counts_cached_answers(env, order):
    """Run 1 pays for part of the stage and stops at the cap; the rerun (same prompts; in the
    reversed case the uncached ones come first, as when the killed attempt did not answer a
    prefix) must not pay for anything more."""
    ps = prompts(12)
    cap = sum(worst(p, SYNC_PRICE) for p in ps[:6])
    with RedBatch() as fake:
        fake.worst_case_billing = True
        with pytest.raises(BudgetExceeded):
            make(fake.url, env / "c.sqlite", backend="openai", max_concurrency=1, max_budget_usd=cap).generate(ps, sp())
        first = fake.sync_served
        rerun = ps if order == "same" else ps[::-1]
        with pytest.raises(BudgetExceeded):
            make(fake.url, env / "c.sqlite", backend="openai", max_concurrency=1, max_budget_usd=cap).generate(rerun, sp())
        wait_until(lambda: fake.sync_in_handler == 0)
        assert fake.sync_billed_usd <= cap + EPS, (
            f"billed {fake.sync_billed_usd / cap:.2f}x the cap: {first} requests in run 1, {fake.sync_served - first} in the rerun")


@pytest.mark.parametrize("order", ["same", "reversed"])
def test_batch_rerun_in_other_order_counts_cached_answers(env, order):
    ps = prompts(12)
    cap = sum(worst(p) for p in ps[:6])
    with RedBatch() as fake:
        fake.worst_case_billing = True
        with pytest.raises(BudgetExceeded):
            make(fake.url, env / "c.sqlite", batch_max_requests=3, max_budget_usd=cap).generate(ps, sp())
        rerun = ps if order == "same" else ps[::-1]
        with pytest.raises(BudgetExceeded):
            make(fake.url, env / "c.sqlite", batch_max_requests=3, max_budget_usd=cap).generate(rerun, sp())
        assert fake.billed_usd <= cap + EPS, (fake.billed_usd / cap, sum(fake.billed.values()))


@pytest.mark.parametrize("n", [1, 2])
def test_batch_cap_exactly_a_worst_case(env, n):
    ps = prompts(8)
    cap = n * sum(worst(p) for p in ps[:3])
    with RedBatch() as fake:
        fake.worst_case_billing = True
        llm = make(fake.url, env / "c.sqlite", batch_max_requests=2, max_budget_usd=cap)
        with pytest.raises(BudgetExceeded):
            llm.generate(ps, sp(n))
        assert fake.billed_usd <= cap + EPS, (fake.billed_usd, cap, sum(fake.billed.values()))
        assert sum(fake.billed.values()) >= 1


def test_batch_cap_with_many_duplicate_prompts(env):
    ps = prompts(1, tag="dup") * 20 + prompts(4)
    cap = 2 * worst(ps[-1])
    with RedBatch() as fake:
        fake.worst_case_billing = True
        try:
            make(fake.url, env / "c.sqlite", max_budget_usd=cap).generate(ps, sp())
        except BudgetExceeded:
            pass
        assert fake.billed_usd <= cap + EPS and max(fake.billed.values(), default=0) <= 1


def test_batch_rerun_counts_cached_answers(env):
    ps = prompts(6)
    cap = sum(worst(p) for p in ps[:3])
    with RedBatch() as fake:
        fake.worst_case_billing = True
        for _ in range(3):
            try:
                make(fake.url, env / "c.sqlite", batch_max_requests=2, max_budget_usd=cap).generate(ps, sp())
            except BudgetExceeded:
                pass
        assert fake.billed_usd <= cap + EPS, (fake.billed_usd, cap)


def test_batch_without_usage_in_answers_keeps_the_worst_case(env):
    ps = prompts(6)
    cap = sum(worst(p) for p in ps[:2])
    with RedBatch() as fake:
        fake.worst_case_billing = True
        fake.omit_usage = True  # the service bills but does not say how much
        try:
            make(fake.url, env / "c.sqlite", batch_max_requests=1, max_budget_usd=cap).generate(ps, sp())
        except BudgetExceeded:
            pass
        except Exception:
            pass
        assert fake.billed_usd <= cap + EPS, (fake.billed_usd, cap)


def test_batch_rerun_after_kill_counts_the_batches_in_flight(env):
    ps = prompts(8)
    cap = sum(worst(p) for p in ps[:4])
    cache_path = env / "c.sqlite"
    with RedBatch() as fake:
        fake.worst_case_billing = True
        fake.release.clear()
        fake.hold_after = 0
        config = cfg(fake.url, batch_max_requests=2, max_budget_usd=cap)
        run_and_kill(config, ps, cache_path, lambda: fake.created >= 1 and all(
            b["status"] == "in_progress" for b in fake.batches.values()))
        time.sleep(0.2)
        fake.release.set()
        try:
            make(fake.url, cache_path, batch_max_requests=2, max_budget_usd=cap).generate(ps, sp())
        except BudgetExceeded:
            pass
        assert fake.billed_usd <= cap + EPS, (fake.billed_usd, cap, fake.created)


def test_batch_rerun_after_kill_before_the_id_was_saved_counts_the_orphan(env):
    ps = prompts(4)
    cap = sum(worst(p) for p in ps[:2])
    cache_path = env / "c.sqlite"
    with RedBatch() as fake:
        fake.worst_case_billing = True
        fake.gates["create_after"] = threading.Event()
        config = cfg(fake.url, batch_max_requests=2, max_budget_usd=cap)
        run_and_kill(config, ps, cache_path, fake.reached["create_after"].is_set)
        fake.open_gates()
        try:
            make(fake.url, cache_path, batch_max_requests=2, max_budget_usd=cap).generate(ps, sp())
        except BudgetExceeded:
            pass
        assert fake.billed_usd <= cap + EPS, (fake.billed_usd, cap, fake.created)
        assert max(fake.billed.values()) == 1


def test_batch_cap_counts_cached_sync_answers_at_the_price_they_were_billed(env):
    """Sync answers cost twice the batch rate; a batch rerun must count them at what was paid."""
    ps = prompts(4)
    cache_path = env / "c.sqlite"
    with RedBatch() as fake:
        fake.worst_case_billing = True
        make(fake.url, cache_path, backend="openai").generate(ps[:2], sp())
        paid_sync = fake.sync_billed_usd
        cap = paid_sync + worst(ps[2]) + 0.5 * worst(ps[3])  # room for one more batch answer, not two
        try:
            make(fake.url, cache_path, max_budget_usd=cap).generate(ps, sp())
        except BudgetExceeded:
            pass
        total = fake.sync_billed_usd + fake.billed_usd
        assert total <= cap + EPS, (total, cap, sum(fake.billed.values()))


# === promise 5: one response cache for both backends ==========================================
@pytest.mark.parametrize("n", [1, 2])
def test_batch_answers_serve_the_sync_backend_for_free(env, n):
    ps = prompts(5)
    with RedBatch() as fake:
        first = make(fake.url, env / "c.sqlite").generate(ps, sp(n))
        second = make(fake.url, env / "c.sqlite", backend="openai").generate(ps, sp(n))
        assert fake.chat_requests == 0
        assert [c.texts for c in first] == [c.texts for c in second] and all(c.cached for c in second)


def test_sync_answers_serve_the_batch_backend_for_free(env):
    ps = prompts(5)
    with RedBatch() as fake:
        first = make(fake.url, env / "c.sqlite", backend="openai").generate(ps, sp(2))
        second = make(fake.url, env / "c.sqlite").generate(ps, sp(2))
        assert fake.uploads_posted == 0 and fake.created == 0
        assert [c.texts for c in first] == [c.texts for c in second]
