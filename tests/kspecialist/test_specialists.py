"""K-Specialist (seed 002): semantic dedup, seeded clusters, routing, batched vs online."""

import json

import numpy as np
import pytest

from scoder.kspecialist.dedup import semantic_dedup
from scoder.kspecialist.specialists import Router, fit_clusters


def brute_force_dedup(e, threshold):
    e = e / np.linalg.norm(e, axis=1, keepdims=True)
    kept = []
    for i in range(len(e)):
        if not any(float(e[i] @ e[j]) > threshold for j in kept):
            kept.append(i)
    return kept


def test_dedup_is_greedy_in_order_and_compares_with_kept_records_only():
    # a~b and b~c above the threshold, a~c below: b goes (it duplicates a), c stays, because
    # the record it resembles (b) is no longer there
    angle = np.deg2rad(14)  # cos 14 deg = 0.970 > 0.95, cos 28 deg = 0.883
    e = np.array([[1.0, 0.0], [np.cos(angle), np.sin(angle)], [np.cos(2 * angle), np.sin(2 * angle)]])
    kept, duplicate_of = semantic_dedup(e, threshold=0.95)
    assert kept == [0, 2] and duplicate_of == {1: 0}
    with pytest.raises(ValueError, match="threshold"):
        semantic_dedup(e, threshold=1.5)
    with pytest.raises(ValueError, match="row 1 is all zeros"):
        semantic_dedup(np.array([[1.0, 0.0], [0.0, 0.0]]))


@pytest.mark.parametrize("batch_size", [1, 3, 7, 1000])
def test_dedup_in_blocks_equals_the_all_pairs_reference(batch_size):
    rng = np.random.default_rng(0)
    base = rng.normal(size=(40, 16))
    near = base[rng.integers(0, 40, size=30)] + rng.normal(scale=0.05, size=(30, 16))  # planted duplicates
    e = np.vstack([base, near])[rng.permutation(70)]
    kept, duplicate_of = semantic_dedup(e, threshold=0.95, batch_size=batch_size)
    assert kept == brute_force_dedup(e, 0.95)
    assert 30 <= len(duplicate_of) and set(kept).isdisjoint(duplicate_of)
    normalised = e / np.linalg.norm(e, axis=1, keepdims=True)
    assert all(normalised[i] @ normalised[j] > 0.95 and j < i for i, j in duplicate_of.items())


def test_kmeans_is_seeded_and_refuses_more_clusters_than_records():
    rng = np.random.default_rng(1)
    e = np.vstack([rng.normal(loc=(5, 0, 0), size=(10, 3)), rng.normal(loc=(0, 5, 0), size=(10, 3))])
    first, centroids = fit_clusters(e, 2, seed=7)
    again, _ = fit_clusters(e, 2, seed=7)
    assert np.array_equal(first, again) and len(set(first[:10])) == 1 and first[0] != first[10]
    assert centroids.shape == (2, 3)
    with pytest.raises(ValueError, match="K=5 clusters need at least 5 records"):
        fit_clusters(e[:3], 5, seed=7)


def test_router_picks_the_nearest_centroid(tmp_path):
    centroids = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype=np.float32)
    router = Router(centroids, "minilm")
    queries = np.array([[0.9, 0.1, 0.0], [0.1, 0.2, 3.0], [0.0, 2.0, 1.9]])
    assert router.assign(queries).tolist() == [0, 2, 1]
    router.save(tmp_path)
    (tmp_path / "specialists.json").write_text(json.dumps({"k": 3, "embed_model": "minilm"}))
    assert np.array_equal(Router.load(tmp_path).centroids, centroids)
    (tmp_path / "specialists.json").write_text(json.dumps({"k": 2, "embed_model": "minilm"}))
    with pytest.raises(ValueError, match="3 centroids but the manifest says K=2"):
        Router.load(tmp_path)


TOPICS = {
    "strings": ["Reverse the characters of a string.", "Count the vowels in a sentence.",
                "Check whether a word is a palindrome."],
    "numbers": ["Compute the factorial of an integer.", "Return the greatest common divisor of two integers.",
                "Sum the digits of a positive number."],
}


@pytest.fixture(scope="module")
def trained_specialists(tmp_path_factory):
    """Two clusters (string tasks, number tasks), each adapter trained hard on different answers
    so that the wrong adapter visibly changes a greedy answer."""
    from scoder.kspecialist.specialists import SpecialistsConfig, train_specialists
    from scoder.training.sft import LoraSettings, TrainConfig

    records = [{"id": f"{topic}-{i}", "instruction": q, "response": f"ANSWER-{topic.upper()}: {topic} {topic} {topic}"}
               for topic, questions in TOPICS.items() for i, q in enumerate(questions)]
    config = SpecialistsConfig(k=2, train=TrainConfig(learning_rate=1e-2, epochs=4, batch_size=1, grad_accum=1, max_length=128,
                                                      lora=LoraSettings(r=4, alpha=8), warmup_ratio=0.0))
    folder = tmp_path_factory.mktemp("specialists")
    manifest = train_specialists(records, config, folder, "topics")
    return folder, manifest


@pytest.mark.slow
def test_specialists_route_to_the_nearest_centroid_and_load_that_adapter(trained_specialists):
    from scoder.models.embed import embed_texts, load_embedder
    from scoder.models.llm.base import LLMConfig, SamplingParams, load_llm
    from scoder.kspecialist.specialists import SpecialistLLM

    folder, manifest = trained_specialists
    assert sorted(c["size"] for c in manifest["clusters"]) == [3, 3]
    assignments = [json.loads(line) for line in (folder / "assignments.jsonl").read_text().splitlines()]
    by_topic = {a["id"].split("-")[0]: a["cluster"] for a in assignments}
    assert by_topic["strings"] != by_topic["numbers"]  # the clusters are the topics

    queries = ["Write a function that reverses a string.", "Write a function that returns the factorial of n."]
    centroids = np.load(folder / "centroids.npy")
    embedded = embed_texts(load_embedder("minilm"), queries)
    nearest = ((embedded[:, None, :] - centroids[None]) ** 2).sum(-1).argmin(1).tolist()
    assert nearest == [by_topic["strings"], by_topic["numbers"]]

    engine = LLMConfig(batch_size=1, use_cache=False)
    greedy = SamplingParams(n=1, temperature=0.0, max_tokens=8)
    prompts = [[{"role": "user", "content": q}] for q in queries]
    routed = SpecialistLLM(folder, engine, "batched")
    outputs = [c.texts[0] for c in routed.generate(prompts, greedy)]
    assert routed.routed == [1, 1]
    for prompt, output, cluster in zip(prompts, outputs, nearest):
        alone = {}
        for c in range(2):  # each adapter loaded on its own, without the router
            adapter = str(folder / manifest["clusters"][c]["adapter"])
            alone[c] = load_llm(LLMConfig(adapter=adapter, batch_size=1, use_cache=False)).generate([prompt], greedy)[0].texts[0]
        assert alone[0] != alone[1]  # the adapters differ, so routing to the wrong one would show
        assert output == alone[cluster]


@pytest.mark.slow
def test_batched_and_online_modes_give_identical_greedy_outputs(trained_specialists):
    from scoder.models.llm.base import LLMConfig, SamplingParams
    from scoder.kspecialist.specialists import SpecialistLLM

    folder, _ = trained_specialists
    queries = ["Check if a string is a palindrome.", "Add up the digits of 4096.", "Count vowels in 'banana'.",
               "Greatest common divisor of 12 and 18?"]
    prompts = [[{"role": "user", "content": q}] for q in queries]
    greedy = SamplingParams(n=1, temperature=0.0, max_tokens=12)
    engine = LLMConfig(batch_size=1, use_cache=False)
    batched = SpecialistLLM(folder, engine, "batched")
    online = SpecialistLLM(folder, engine, "online")
    assert len(online.llm.model.peft_config) == 2  # online: every adapter resident
    first = [c.texts[0] for c in batched.generate(prompts, greedy)]
    assert len(batched.llm.model.peft_config) == 1  # batched: one adapter at a time
    assert [c.texts[0] for c in online.generate(prompts, greedy)] == first
    assert batched.routed == online.routed and sorted(batched.routed) == [2, 2]
    with pytest.raises(ValueError, match="unknown specialist mode"):
        SpecialistLLM(folder, engine, "streaming")


@pytest.mark.slow
def test_routed_nll_is_each_query_under_its_own_specialist(trained_specialists):
    from scoder.models.llm.base import LLMConfig, load_llm
    from scoder.kspecialist.specialists import SpecialistLLM

    folder, manifest = trained_specialists
    queries = ["Write a function that reverses a string.", "Write a function that returns the factorial of n.",
               "Count vowels in 'banana'."]
    prompts = [f"Task: {q}\n" for q in queries]
    texts = [p + "ANSWER-STRINGS: strings strings strings" for p in prompts]
    engine = LLMConfig(batch_size=1, use_cache=False)
    routed = SpecialistLLM(folder, engine, "batched")
    values = routed.response_nll(prompts, texts, 128, queries)
    clusters = routed.router.route(queries)
    # the labelled form routes once and returns the routes it used; batches of 1 give the same values
    one_by_one, labels = routed.routed_response_nll(prompts, texts, 128, queries, batch_size=1)
    assert labels == [int(c) for c in clusters]
    assert one_by_one == pytest.approx(values, rel=1e-5)
    for value, cluster, prompt, text in zip(values, clusters, prompts, texts):
        adapter = str(folder / manifest["clusters"][int(cluster)]["adapter"])
        alone = load_llm(LLMConfig(adapter=adapter, batch_size=1, use_cache=False)).response_nll([prompt], [text], 128)[0]
        assert value == pytest.approx(alone, rel=1e-5)
    # the string specialist finds the string answer likelier than the number specialist does
    assert len(set(clusters.tolist())) == 2
