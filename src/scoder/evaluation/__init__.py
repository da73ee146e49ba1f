"""Benchmarks (EvalPlus pass@k, canonical NLL), dataset diversity/complexity metrics, the report."""
