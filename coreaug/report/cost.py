"""The cost sections of a report: accuracy against cost, matched-cost comparisons, selection that did not pay
(:mod:`coreaug.report.matched_cost`, :mod:`coreaug.train.cost`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from coreaug.io import write_figure_atomic, write_text_atomic


def unpaid_selection_lines(runs: Sequence[dict[str, Any]]) -> list[str]:
    """One line per run whose selection took longer than the training it saved (``selection_pays`` false)."""
    lines = []
    for run in runs:
        r = run["results"]
        if r.get("selection_pays") is False:
            lines.append(f"- {run['dir']}: selection {r.get('selection_time_total', 0.0):.2f}s > "
                         f"~{r.get('selection_saved_s') or 0.0:.2f}s of training saved against the same epochs of "
                         f"{r.get('reference')}")
    return lines


def cost_sections(runs: Sequence[dict[str, Any]], frame: Any = None) -> str:
    """Markdown appended to a summary: the matched-cost table (``frame``: an already computed
    :func:`~coreaug.report.matched_cost.matched_cost_frame` of ``runs``) and the runs whose selection
    did not pay."""
    from coreaug.report.matched_cost import has_cost, matched_cost_frame, matched_cost_markdown

    if not any(has_cost(r) for r in runs):
        return ""
    frame = matched_cost_frame(runs) if frame is None else frame
    text = "\n## Accuracy at matched cost\n\n" + matched_cost_markdown(frame)
    unpaid = unpaid_selection_lines(runs)
    if unpaid:
        text += "\n## Selection that did not pay\n\n" + "\n".join(unpaid) + "\n"
    return text


def write_cost_report(runs: Sequence[dict[str, Any]], out: Path) -> tuple[dict[str, Path], str]:
    """``matched_cost.csv`` and ``accuracy_vs_cost.png`` when any run recorded its cost, and the
    summary's cost sections (:func:`cost_sections`), from one matched-cost frame."""
    import matplotlib.pyplot as plt

    from coreaug.report.matched_cost import accuracy_vs_cost_figure, has_cost, matched_cost_frame

    if not any(has_cost(r) for r in runs):
        return {}, ""
    frame = matched_cost_frame(runs)
    paths = {"matched_cost_csv": out / "matched_cost.csv", "cost_png": out / "accuracy_vs_cost.png"}
    write_text_atomic(paths["matched_cost_csv"], frame.to_csv(index=False))
    fig = accuracy_vs_cost_figure(runs)
    write_figure_atomic(fig, paths["cost_png"], dpi=110)
    plt.close(fig)
    return paths, cost_sections(runs, frame)
