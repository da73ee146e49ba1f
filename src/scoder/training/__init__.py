"""Supervised fine-tuning (TRL + PEFT) with explicit precision, M checkpoints and Adam state."""
