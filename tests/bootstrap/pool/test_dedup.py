import textwrap

from scoder.bootstrap.pool.dedup import near_dedup, signature

BASE = textwrap.dedent(
    '''
    def binary_search(items, target):
        """Return the index of target in sorted items, or -1."""
        low, high = 0, len(items) - 1
        while low <= high:
            mid = (low + high) // 2
            if items[mid] == target:
                return mid
            if items[mid] < target:
                low = mid + 1
            else:
                high = mid - 1
        return -1
    '''
)
# renamed variable in one line and a changed docstring: a near-duplicate
NEAR = BASE.replace("Return the index of target in sorted items, or -1.", "Find target in a sorted list.").replace(
    "return -1", "return None"
)
DISTINCT = textwrap.dedent(
    '''
    def word_counts(text, lower):
        """Count how often each word occurs in text."""
        counts = {}
        for word in text.split():
            key = word.lower() if lower else word
            counts[key] = counts.get(key, 0) + 1
        return counts
    '''
)
ALSO_DISTINCT = textwrap.dedent(
    '''
    def fibonacci(n):
        """Return the n-th Fibonacci number."""
        a, b = 0, 1
        for _ in range(n):
            a, b = b, a + b
        return a
    '''
)


def sig(code):
    return signature(code, num_perm=128, ngram=5)


def test_planted_near_duplicate_removed_distinct_kept():
    items = [("base", sig(BASE)), ("words", sig(DISTINCT)), ("near", sig(NEAR)), ("fib", sig(ALSO_DISTINCT))]
    kept, dropped = near_dedup(items, threshold=0.5, num_perm=128)
    assert kept == ["base", "words", "fib"]
    assert dropped == {"near": "base"}


def test_first_occurrence_wins_and_order_is_stable():
    items = [("near", sig(NEAR)), ("base", sig(BASE))]
    kept, dropped = near_dedup(items, threshold=0.5, num_perm=128)
    assert kept == ["near"] and dropped == {"base": "near"}


def test_higher_threshold_keeps_more():
    items = [("base", sig(BASE)), ("near", sig(NEAR))]
    kept_strict, _ = near_dedup(items, threshold=0.95, num_perm=128)
    assert kept_strict == ["base", "near"]


def test_signatures_are_deterministic():
    assert (sig(BASE) == sig(BASE)).all()


def datasketch_near_dedup(items, threshold, num_perm):
    """near_dedup as it was, on datasketch's MinHashLSH and LeanMinHash."""
    from datasketch import LeanMinHash, MinHashLSH

    from scoder.bootstrap.pool.dedup import MINHASH_SCHEME, MINHASH_SEED

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    kept, signatures, position, dropped = [], {}, {}, {}
    for item_id, hashvalues in items:
        minhash = LeanMinHash(seed=MINHASH_SEED, hashvalues=hashvalues, scheme=MINHASH_SCHEME)
        match = None
        for candidate in sorted(lsh.query(minhash), key=position.__getitem__):
            if minhash.jaccard(signatures[candidate]) >= threshold:
                match = candidate
                break
        if match is None:
            lsh.insert(item_id, minhash, check_duplication=False)
            signatures[item_id] = minhash
            position[item_id] = len(kept)
            kept.append(item_id)
        else:
            dropped[item_id] = match
    return kept, dropped


def test_near_dedup_equals_datasketch_lsh():
    """Stdlib functions and edited copies of them (lines dropped or repeated), in shuffled order,
    at several thresholds: the same kept ids and the same reported matches."""
    import random
    import sysconfig
    from pathlib import Path

    from scoder.bootstrap.pool.extract import extract_functions

    rng = random.Random(0)
    codes = []
    for name in ("functools.py", "textwrap.py", "difflib.py", "statistics.py"):
        source = (Path(sysconfig.get_paths()["stdlib"]) / name).read_text(encoding="utf-8")
        codes += [fn.code for fn in extract_functions(source)]
    for code in list(codes):
        lines = code.splitlines(keepends=True)
        for _ in range(2):
            edited = [line for line in lines if rng.random() > 0.2] + [rng.choice(lines)]
            codes.append("".join(edited))
    rng.shuffle(codes)
    for num_perm in (128, 64):
        items = [(f"s{i}", signature(code, num_perm=num_perm, ngram=5)) for i, code in enumerate(codes)]
        for threshold in (0.3, 0.5, 0.8):
            ours = near_dedup(items, threshold=threshold, num_perm=num_perm)
            assert ours == datasketch_near_dedup(items, threshold, num_perm)
            assert ours[1]  # near-duplicates were found
