"""spectra: Jacobian spectra of neural networks under bounded input perturbations.

Plain functions over tensors and ``torch.nn.Module`` objects; works on CPU and CUDA. Never
imports ``coreaug``.

* :mod:`spectra.jacobian` — per-example Jacobians (vmap∘jacrev), J v / Jᵀ u, blockwise Gram/NTK;
* :mod:`spectra.spectrum` — exact / Gram-based / top-k SVD, condition number, effective rank;
* :mod:`spectra.perturb` — random and worst-case ε-ball perturbations, augmentation deltas;
* :mod:`spectra.shift` — singular-value shifts, principal angles, Weyl/Wedin/Davis–Kahan checks;
* :mod:`spectra.alignment` — coreset alignment error ξ(S, γ), linearised residual dynamics.
"""

from spectra.alignment import (
    ResidualDynamics,
    alignment_error,
    alignment_errors,
    gram_eigh,
    residual_dynamics,
    residuals,
)
from spectra.errors import SpectraError
from spectra.jacobian import (
    JacobianOperator,
    ParamInfo,
    eval_mode,
    gram_matrix,
    jacobian,
    jacobian_loop,
    jvp_product,
    num_outputs,
    parameter_layout,
    select_parameters,
    vjp_product,
)
from spectra.perturb import (
    AugmentationDeltas,
    augmentation_deltas,
    perturbation_norms,
    project,
    random_perturbation,
    worst_case_perturbation,
)
from spectra.shift import (
    BoundCheck,
    davis_kahan_check,
    principal_angles,
    relative_shift,
    shift_report_from_gram,
    shift_summary,
    sin_theta,
    stacked_check,
    wedin_check,
    weyl_check,
)
from spectra.spectrum import (
    SVDResult,
    condition_number,
    effective_rank,
    exact_svd,
    numerical_rank,
    singular_values,
    singular_values_from_gram,
    stable_rank,
    svd_from_gram,
    top_k_svd,
)

__all__ = [
    "SpectraError",
    # jacobian
    "JacobianOperator", "ParamInfo", "eval_mode", "gram_matrix", "jacobian", "jacobian_loop", "jvp_product",
    "num_outputs", "parameter_layout", "select_parameters", "vjp_product",
    # spectrum
    "SVDResult", "condition_number", "effective_rank", "exact_svd", "numerical_rank", "singular_values",
    "singular_values_from_gram", "stable_rank", "svd_from_gram", "top_k_svd",
    # perturb
    "AugmentationDeltas", "augmentation_deltas", "perturbation_norms", "project", "random_perturbation",
    "worst_case_perturbation",
    # shift
    "BoundCheck", "davis_kahan_check", "principal_angles", "relative_shift", "shift_report_from_gram", "shift_summary", "sin_theta", "stacked_check",
    "wedin_check", "weyl_check",
    # alignment
    "ResidualDynamics", "alignment_error", "alignment_errors", "gram_eigh", "residual_dynamics", "residuals",
]
