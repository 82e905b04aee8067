"""Theory figures on a small setting: the data they plot is consistent with closed forms and bounds."""

from __future__ import annotations

import json
import math

import pytest
import torch

from coreaug.errors import ConfigError
from coreaug.figures import FIGURES, make_figures, theory


@pytest.fixture(scope="module")
def setting():
    return theory.theory_setting(n=60, epochs=1, seed=0)


def test_setting_perturbations_have_their_stated_norms(setting):
    for name, xp in setting.perturbed.items():
        norms = (xp - setting.x).flatten(1).norm(dim=1)
        if name.startswith("random L2, eps="):
            eps = float(name.split("=")[1])
            torch.testing.assert_close(norms, torch.full_like(norms, eps))
        else:
            assert norms.mean() > 0  # a real augmentation moved the images


def test_singular_value_shifts_are_consistent(setting):
    df, summary = theory.singular_value_shifts(setting)
    for name, g in df.groupby("perturbation"):
        # the duplicate baseline is exactly sqrt(2) times the clean spectrum
        assert (g.sigma_dup / g.sigma_clean).sub(math.sqrt(2)).abs().max() < 1e-9
        # appending can only raise singular values (Weyl / interlacing): sigma_i([J;J~]) >= sigma_i(J)
        assert (g.sigma_appended >= g.sigma_clean * (1 - 1e-9)).all()
        assert summary[name]["stacked_bound"]["holds"]
    small = df[df.perturbation == "random L2, eps=0.5"]
    # the paper's qualitative claim on this setting: the bottom of the spectrum moves relatively more
    s = summary["random L2, eps=0.5"]["appended"]
    assert s["bottom_rel_change"] > s["top_rel_change"]
    assert len(small) == setting.x.shape[0]


def test_subspace_rotation_matches_wedin_and_grows_with_eps(setting):
    df, summary = theory.subspace_rotation(setting, max_rank=5, wedin_rank=3)
    for name, info in summary.items():
        assert info["wedin"]["holds"], name
    top1 = df[df["rank"] == 1].set_index("perturbation").max_angle_deg
    assert top1["random L2, eps=0.5"] <= top1["random L2, eps=2"] + 1e-6


def test_alignment_is_zero_for_the_whole_set_and_coreset_beats_random_on_clean_data(setting):
    df = theory.alignment_vs_size(setting, fractions=(0.3, 1.0), random_seeds=3, augmentations=("none",))
    full = df[df.fraction == 1.0]
    assert (full.xi_relative < 1e-6).all()  # every point selected with unit/cluster weights: exact
    part = df[df.fraction == 0.3].groupby("selector").xi_relative.mean()
    assert part["coreset"] < part["random"]


def test_residual_decay_full_data_converges(setting):
    curves, directions, summary = theory.residual_decay(setting, n=30, steps=50, augmentations=("none",))
    full = curves[(curves.run == "full data")]
    assert full.loss.is_monotonic_decreasing
    assert summary["none"]["full data"]["final_loss"] < summary["none"]["full data"]["initial_loss"]
    assert set(directions.run) == {"full data", "coreset", "random", "max-loss"}


def test_make_figures_writes_every_format(tmp_path):
    written = make_figures(tmp_path, only=["fig2_subspace_rotation"], log=lambda _: None)
    names = sorted(p.name for p in written["fig2_subspace_rotation"])
    assert names == sorted(f"fig2_subspace_rotation.{e}" for e in ("csv", "json", "pdf", "png"))
    assert json.loads((tmp_path / "fig2_subspace_rotation.json").read_text())
    assert (tmp_path / "fig2_subspace_rotation.png").read_bytes()[:4] == b"\x89PNG"


def test_unknown_figure_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown figure"):
        make_figures(tmp_path, only=["fig9"])
    assert "fig5_accuracy_vs_time" in FIGURES
