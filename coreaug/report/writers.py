"""Write a report folder: the plain report (``coreaug report``) and the sweep's statistics report."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from coreaug.io import write_figure_atomic, write_text_atomic
from coreaug.report.cost import write_cost_report
from coreaug.report.plots import (
    diagnostics_figure, diagnostics_frame, plot_accuracy_vs_time, selector_accuracy_figure,
)
from coreaug.report.runs import check_report_folder, find_runs, load_run
from coreaug.report.stats import NOISE_ALPHA, _stats_frames, stats_markdown_table, stats_notes
from coreaug.report.tables import markdown_table, runs_frame, summary_frame


def write_report(run_dirs: Iterable[str | Path], out_dir: str | Path) -> dict[str, Path]:
    """Load runs, write ``runs.csv``, ``summary.csv``, ``summary.md`` and ``accuracy_vs_time.png`` to ``out_dir``;
    plus ``diagnostics.csv`` and ``diagnostics.png`` when any run has diagnostics. Each run counts once
    (:func:`find_runs`); ``out_dir`` must not be a run folder (:func:`check_report_folder`)."""
    found = find_runs(run_dirs)
    out = check_report_folder(out_dir, found)
    runs = [load_run(d) for d in found]
    df = runs_frame(runs)
    summary = summary_frame(df)
    paths = {"runs": out / "runs.csv", "csv": out / "summary.csv", "md": out / "summary.md",
             "png": out / "accuracy_vs_time.png"}
    write_text_atomic(paths["runs"], df.to_csv(index=False))
    write_text_atomic(paths["csv"], summary.to_csv(index=False))
    cost_paths, cost_md = write_cost_report(runs, out)
    write_text_atomic(paths["md"], markdown_table(summary) + cost_md)
    plot_accuracy_vs_time(runs, paths["png"])
    paths.update(cost_paths)
    diag = diagnostics_frame(runs)
    if not diag.empty:
        import matplotlib.pyplot as plt

        paths["diagnostics_csv"] = out / "diagnostics.csv"
        paths["diagnostics_png"] = out / "diagnostics.png"
        write_text_atomic(paths["diagnostics_csv"], diag.to_csv(index=False))
        fig = diagnostics_figure(runs)
        write_figure_atomic(fig, paths["diagnostics_png"], dpi=110)
        plt.close(fig)
    return paths



def write_stats_report(run_dirs: Iterable[str | Path], out_dir: str | Path, *, level: float = 0.95,
                       alpha: float = NOISE_ALPHA) -> dict[str, Path]:
    """The sweep report: ``runs.csv``, ``summary.csv``/``summary.md`` (:func:`stats_summary_frame`, notes
    under the table), ``accuracy_vs_time.png`` and ``selector_accuracy.png`` in ``out_dir``, atomically."""
    import matplotlib.pyplot as plt

    found = find_runs(run_dirs)
    out = check_report_folder(out_dir, found)
    runs = [load_run(d) for d in found]
    df, summary = _stats_frames(runs, level=level, alpha=alpha)
    paths = {"runs": out / "runs.csv", "csv": out / "summary.csv", "md": out / "summary.md",
             "png": out / "accuracy_vs_time.png", "selectors_png": out / "selector_accuracy.png"}
    write_text_atomic(paths["runs"], df.to_csv(index=False))
    write_text_atomic(paths["csv"], summary.to_csv(index=False))
    cost_paths, cost_md = write_cost_report(runs, out)
    write_text_atomic(paths["md"], stats_markdown_table(summary, alpha=alpha) + "\n" + stats_notes(summary, alpha=alpha)
                      + cost_md)
    plot_accuracy_vs_time(runs, paths["png"])
    paths.update(cost_paths)
    fig = selector_accuracy_figure(summary)
    write_figure_atomic(fig, paths["selectors_png"], dpi=110)
    plt.close(fig)
    return paths
