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
