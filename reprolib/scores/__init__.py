"""A run's scores and the metrics computed from them.

saved (`<id>.scores.npz`: test and OOD logits), metrics and ood (the formulas), registry
(the Metric entries every table and figure reads), recompute (`ledger --recompute-metrics`).
"""
