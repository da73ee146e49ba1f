"""scoder: a reproducible pipeline for bootstrapped code-instruction data."""

__version__ = "0.1.0"
