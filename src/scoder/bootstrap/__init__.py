"""SCoder (seed 000): bootstrapping small LLMs into code-instruction data synthesizers: the
snippet pool, categories, distillation, multi-checkpoint sampling, 10-aspect scoring,
optimizer-aware influence selection and the final dataset."""
