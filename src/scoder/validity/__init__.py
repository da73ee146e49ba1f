"""experiments/validity: selection signals measured against known answers (labelled candidates, AUCs, downstream fine-tunes)."""
