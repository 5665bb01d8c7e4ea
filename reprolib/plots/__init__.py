"""Figures and tables of the study, drawn from the ledger (pure functions: DataFrame -> Figure).

A function with nothing to draw returns None; `save(fig, out_dir, name, why)` writes PNG +
PDF atomically (for None: one line saying why, nothing written); `save_table(df, out_dir,
name)` writes CSV + Markdown. Submodules: accuracy (upstream, accuracy vs sparsity, few-shot,
SMM), ood (OOD detection vs sparsity), calibration (ECE & co. vs sparsity, reliability diagrams, legacy ECE), tables,
explorer (one run's panel). Import cost: matplotlib, only when this package is imported.
"""

from reprolib.plots.accuracy import accuracy_vs_sparsity, few_shot, metric_vs_sparsity, smm_vs_prompts, upstream_per_level
from reprolib.plots.calibration import (calibration_vs_sparsity, draw_reliability, legacy_vs_real_ece,
                                        reliability_pair)
from reprolib.plots.common import (empty_panels, headline_shot, own_shot_settings, save, save_table, shown_metrics,
                                   to_markdown)
from reprolib.plots.explorer_run import explorer_panel, select_run
from reprolib.plots.ood import ood_columns, ood_vs_sparsity
from reprolib.plots.reprogrammer import reprogrammer_bars
from reprolib.plots.tables import few_shot_pivot, interval_pivot, summary_table

__all__ = [
    "accuracy_vs_sparsity", "few_shot", "metric_vs_sparsity", "ood_columns", "ood_vs_sparsity",
    "smm_vs_prompts", "upstream_per_level", "calibration_vs_sparsity", "draw_reliability",
    "legacy_vs_real_ece", "reliability_pair", "empty_panels", "headline_shot", "own_shot_settings", "save",
    "save_table",
    "shown_metrics", "to_markdown",
    "explorer_panel", "select_run", "reprogrammer_bars", "few_shot_pivot", "interval_pivot", "summary_table",
]
