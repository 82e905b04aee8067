"""The paper's published numbers that a sweep report can show beside measured ones.

Only what PAPER.md records, each with its source tag. The paper's per-table accuracies were NOT FOUND
(PAPER.md §4 "Headline numbers"): what is known are headline speed-ups and accuracy gains from the
abstracts, none of which names the regime (b)/(c) or gives absolute accuracies. So the report's paper
column shows these headlines on the matching coreset rows and stays empty everywhere else; no number
here is derived or guessed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PaperNumber:
    """One published number and the rows of a report it describes."""

    dataset: str
    selector: str  # the selector the number is about (the paper's method = "coreset")
    fraction: float | None  # subset fraction it was stated for; None: stated across subset sizes
    quantity: str  # "speedup_vs_full_aug" | "gain_vs_maxloss" | "max_gain_vs_baselines"
    value: float
    text: str  # how it reads in a table cell
    source: str  # PAPER.md tag and where the number was read


PAPER_NUMBERS: tuple[PaperNumber, ...] = (
    # CIFAR10 — NeurIPS abstract: 6.3x faster, baselines beaten by up to 10% over subset sizes; the ICLR-2022
    # abstract ties 6.3x to 10% subsets and gives the margin over max-loss there.
    PaperNumber("cifar10", "coreset", 0.1, "speedup_vs_full_aug", 6.3, "6.3x vs full aug",
                "[paper] ICLR-2022 abstract (10% subsets); NeurIPS abstract without the size"),
    PaperNumber("cifar10", "coreset", 0.1, "gain_vs_maxloss", 7.7, "+7.7% vs max-loss",
                "[paper] ICLR-2022 abstract (10% subsets)"),
    PaperNumber("cifar10", "coreset", None, "max_gain_vs_baselines", 10.0, "up to +10% vs baselines",
                "[paper] NeurIPS abstract (CIFAR10 and SVHN, across subset sizes)"),
    # SVHN — same two abstracts: 2.2x; +4.7% over max-loss with 30% subsets.
    PaperNumber("svhn", "coreset", 0.3, "speedup_vs_full_aug", 2.2, "2.2x vs full aug",
                "[paper] ICLR-2022 abstract (30% subsets); NeurIPS abstract without the size"),
    PaperNumber("svhn", "coreset", 0.3, "gain_vs_maxloss", 4.7, "+4.7% vs max-loss",
                "[paper] ICLR-2022 abstract (30% subsets)"),
    PaperNumber("svhn", "coreset", None, "max_gain_vs_baselines", 10.0, "up to +10% vs baselines",
                "[paper] NeurIPS abstract (CIFAR10 and SVHN, across subset sizes)"),
    # TinyImageNet and ImageNet — NeurIPS abstract, stated for both together.
    PaperNumber("tinyimagenet", "coreset", None, "max_gain_vs_baselines", 8.0, "up to +8% vs baselines, up to 3.3x",
                "[paper] NeurIPS abstract (TinyImageNet and ImageNet together)"),
    PaperNumber("imagenet", "coreset", None, "max_gain_vs_baselines", 8.0, "up to +8% vs baselines, up to 3.3x",
                "[paper] NeurIPS abstract (TinyImageNet and ImageNet together)"),
)

#: Said once under a report table that shows any paper number.
PAPER_NOTE = ("paper column: headline numbers from the paper's abstracts (PAPER.md §4, tag [paper]); the regime "
              "and absolute accuracies are not stated there, and '%' is not said to be absolute or relative")


def paper_numbers_for(dataset: str, selector: str | None, fraction: float | None) -> list[PaperNumber]:
    """The published numbers about ``selector`` at ``fraction`` on ``dataset`` (exact size first)."""
    if selector is None:
        return []
    hits = [p for p in PAPER_NUMBERS if p.dataset == str(dataset).lower() and p.selector == selector
            and (p.fraction is None or (fraction is not None and abs(p.fraction - float(fraction)) < 1e-9))]
    return sorted(hits, key=lambda p: p.fraction is None)


def paper_cell(dataset: str, selector: str | None, fraction: float | None) -> str:
    """A table cell: the matching numbers joined by "; " (empty when the paper gives none)."""
    return "; ".join(p.text for p in paper_numbers_for(dataset, selector, fraction))


__all__ = ["PaperNumber", "PAPER_NUMBERS", "PAPER_NOTE", "paper_numbers_for", "paper_cell"]
