"""K-Specialist (seed 002): semantic dedup, K-means clusters, one LoRA adapter per cluster, routed inference."""
