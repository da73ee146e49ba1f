import numpy as np
import pytest

from scoder.bootstrap.categorize import TASK_CATEGORIES, assign_categories, sample_per_category
from scoder.models.embed import embed_texts, load_embedder


@pytest.fixture(scope="module")
def minilm():
    return load_embedder("minilm")


def test_shipped_model_embeds_normalised_vectors(minilm):
    vectors = embed_texts(minilm, ["def add(a, b): return a + b", "SELECT * FROM users"])
    assert vectors.shape == (2, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_real_model_assigns_obvious_snippets(minilm):
    snippets = [
        'def run_query(conn, user_id):\n    """Fetch the user row from the users table with SQL."""\n'
        '    cur = conn.execute("SELECT name FROM users WHERE id = ?", (user_id,))\n    return cur.fetchone()\n',
        'def encrypt(key, plaintext):\n    """Encrypt the plaintext with an AES cipher and a secret key."""\n'
        "    cipher = AES.new(key, AES.MODE_GCM)\n    return cipher.encrypt(plaintext)\n",
        'def train_classifier(features, labels):\n    """Fit a machine learning model on the training data."""\n'
        "    model = LogisticRegression().fit(features, labels)\n    return model\n",
    ]
    best, cosine = assign_categories(embed_texts(minilm, snippets), embed_texts(minilm, TASK_CATEGORIES))
    assert [TASK_CATEGORIES[i] for i in best] == [
        "Database and SQL Problems",
        "Security and Cryptography Problems",
        "Data Science and Machine Learning Problems",
    ]
    assert ((cosine > 0) & (cosine <= 1.0001)).all()


def test_unknown_model_is_a_clear_error():
    with pytest.raises((ValueError, FileNotFoundError), match="no-such-model"):
        load_embedder("./no-such-model")
    with pytest.raises(ValueError, match="nobody/no-such-model"):
        load_embedder("nobody/no-such-model")


def test_sampling_is_seeded_and_capped():
    labels = ["a"] * 10 + ["b"] * 2 + ["c"] * 5
    first, stats = sample_per_category(labels, ["a", "b", "c"], 3, seed=7)
    again, _ = sample_per_category(labels, ["a", "b", "c"], 3, seed=7)
    other, _ = sample_per_category(labels, ["a", "b", "c"], 3, seed=8)
    assert first == again and first != other
    assert stats["a"]["chosen"] == 3 and stats["b"]["chosen"] == 2 and stats["c"]["chosen"] == 3
    assert len(first) == 8


def test_lazy_filter_evaluates_only_until_the_quota_fills():
    labels = ["a"] * 20
    seen = []

    def accept(indices):
        seen.extend(indices)
        return [i % 2 == 0 for i in indices]

    chosen, stats = sample_per_category(labels, ["a"], 2, seed=1, accept=accept, batch_size=4)
    assert len(chosen) == 2 and all(i % 2 == 0 for i in chosen)
    assert stats["a"]["evaluated"] == len(seen) < 20
    assert stats["a"]["rejected"] == sum(1 for i in seen if i % 2)


def test_mpnet_from_its_split_zip_packages():
    model = load_embedder("mpnet")
    vectors = embed_texts(model, ["def add(a, b): return a + b"])
    assert vectors.shape == (1, 768) and np.isclose(np.linalg.norm(vectors), 1.0, atol=1e-5)
