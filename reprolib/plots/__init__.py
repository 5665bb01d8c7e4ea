"""Figures and tables of the study, drawn from the ledger (pure functions: DataFrame -> Figure).

`save(fig, out_dir, name)` writes PNG + PDF atomically; `save_table(df, out_dir, name)`
writes CSV + Markdown. Submodules: accuracy (upstream, accuracy vs sparsity, few-shot, SMM,
OOD), calibration (ECE & co. vs sparsity, reliability diagrams, legacy ECE), tables,
explorer (one run's panel). Import cost: matplotlib, only when this package is imported.
"""

from reprolib.plots.accuracy import (accuracy_vs_sparsity, few_shot, metric_vs_sparsity, ood_columns,
                                     ood_vs_sparsity, smm_vs_prompts, upstream_per_level)
from reprolib.plots.calibration import (calibration_vs_sparsity, draw_reliability, legacy_vs_real_ece,
                                        reliability_pair)
from reprolib.plots.common import empty_figure, save, save_table, to_markdown
from reprolib.plots.explorer import explorer_panel, select_run
from reprolib.plots.reprogrammer import reprogrammer_bars
from reprolib.plots.tables import few_shot_pivot, interval_pivot, summary_table

__all__ = [
    "accuracy_vs_sparsity", "few_shot", "metric_vs_sparsity", "ood_columns", "ood_vs_sparsity",
    "smm_vs_prompts", "upstream_per_level", "calibration_vs_sparsity", "draw_reliability",
    "legacy_vs_real_ece", "reliability_pair", "empty_figure", "save", "save_table", "to_markdown",
    "explorer_panel", "select_run", "reprogrammer_bars", "few_shot_pivot", "interval_pivot", "summary_table",
]
