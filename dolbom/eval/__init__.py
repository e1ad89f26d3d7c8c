"""The care-outcome evaluation (DESIGN.md §7, docs/evaluation.md): a simulated
population with ground truth, the real rules replayed over it, naive timers beside
them, and a scored report."""
