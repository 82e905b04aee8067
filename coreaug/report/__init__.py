"""Reports across run folders (a package, one module per job: :mod:`~coreaug.report.runs` loads and finds
run folders, :mod:`~coreaug.report.tables` and :mod:`~coreaug.report.stats` summarise them,
:mod:`~coreaug.report.plots` and :mod:`~coreaug.report.cost` draw and compare them at equal cost,
:mod:`~coreaug.report.writers` writes a report folder): per-run rows, a per-configuration table over seeds, accuracy-vs-time plot.

A run folder is what :func:`coreaug.train.train` writes (``config.json``, ``results.json``,
``metrics.csv``). Runs that differ only in ``seed`` are grouped; each group gets accuracy mean ± std
over seeds (sample std, 0 for one seed), mean training wall-clock (training + selection, evaluation
excluded) and the **speed-up vs ``full-aug``** = mean time of the ``full-aug`` group with the same
dataset, model, epochs and label noise ÷ this group's mean time (docs/paper-notes.md §5.6: measured on the same
device). Every file is written atomically. A run folder reached twice (named twice, or inside a named
folder, or through a symlink) counts once, and a report never writes into a run folder.

Runs trained with ``--diagnostics-every K`` also carry ``diagnostics.csv``
(:mod:`coreaug.train.diagnostics`); the report then adds ``diagnostics.csv`` (all runs' rows, with a
``run`` column) and ``diagnostics.png``: the probe Jacobian's condition number, the relative increase
of its bottom/top 10% singular values when augmented copies are appended, and the alignment error ξ
of the run's selector vs a random subset (clean and augmented probe), against epoch, one line per run.
"""

from coreaug.report.cost import cost_sections, unpaid_selection_lines, write_cost_report
from coreaug.report.plots import (
    accuracy_vs_time_figure, diagnostics_figure, diagnostics_frame, plot_accuracy_vs_time, run_label,
    selector_accuracy_figure,
)
from coreaug.report.runs import (
    RUN_FOLDER_MARKERS, check_report_folder, find_runs, find_runs_once, folder_identity, is_run_folder, load_run,
    repeats_note, unique_folders,
)
from coreaug.report.stats import (
    NOISE_ALPHA, PAIR_KEYS, REFERENCE_SELECTOR, format_p, noise_verdict, selection_share, stats_markdown_table,
    stats_notes, stats_summary_frame, t_interval, welch_test,
)
from coreaug.report.tables import (
    BASELINE_KEYS, GROUP_KEYS, markdown_table, method_cell, pruning_label, runs_frame, summary_frame,
)
from coreaug.report.writers import write_report, write_stats_report

__all__ = [
    "BASELINE_KEYS", "GROUP_KEYS", "NOISE_ALPHA", "PAIR_KEYS", "REFERENCE_SELECTOR", "RUN_FOLDER_MARKERS",
    "accuracy_vs_time_figure", "check_report_folder", "cost_sections", "diagnostics_figure", "diagnostics_frame",
    "find_runs", "find_runs_once", "folder_identity", "format_p", "is_run_folder", "load_run", "markdown_table",
    "method_cell", "noise_verdict", "plot_accuracy_vs_time", "pruning_label", "repeats_note", "run_label",
    "runs_frame", "selection_share", "selector_accuracy_figure", "stats_markdown_table", "stats_notes",
    "stats_summary_frame", "summary_frame", "t_interval", "unique_folders", "unpaid_selection_lines",
    "welch_test", "write_cost_report", "write_report", "write_stats_report",
]
