"""Data selection: the distribution-consistent, diversity-aware parametric model (seed 003)
and the baselines it is compared with (random, K-Center, PPL, IFD)."""
