"""spectra.jacobian against references: autograd loop, central finite differences, closed forms."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spectra import (
    JacobianOperator,
    SpectraError,
    gram_matrix,
    jacobian,
    jacobian_loop,
    jvp_product,
    parameter_layout,
    select_parameters,
    vjp_product,
)

F64 = torch.float64


def tiny_mlp(d_in: int = 6, k: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(d_in, 8), nn.Tanh(), nn.Linear(8, 5), nn.Tanh(), nn.Linear(5, k))


class TinyCNN(nn.Module):
    def __init__(self, k: int = 4):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)
        self.conv2 = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.fc = nn.Linear(4, k)

    def forward(self, x):
        h = torch.tanh(self.bn(self.conv1(x)))
        h = torch.tanh(self.conv2(h)).mean(dim=(2, 3))
        return self.fc(h)


def tiny_cnn() -> nn.Module:
    torch.manual_seed(1)
    m = TinyCNN()
    # non-trivial running statistics, so eval mode (running stats) differs from batch stats
    m.bn.running_mean.uniform_(-0.5, 0.5)
    m.bn.running_var.uniform_(0.5, 2.0)
    return m


def _data(model_name: str, n: int = 5):
    g = torch.Generator().manual_seed(2)
    if model_name == "mlp":
        return tiny_mlp(), torch.randn(n, 6, generator=g)
    return tiny_cnn(), torch.randn(n, 1, 5, 5, generator=g)


def finite_difference_jacobian(model: nn.Module, x: torch.Tensor, names: list[str], h: float = 1e-6) -> torch.Tensor:
    """Central differences in float64 over every selected scalar parameter (model in eval mode)."""
    m = _double_copy(model)
    m.eval()
    x = x.double()
    params = dict(m.named_parameters())
    cols = []
    with torch.no_grad():
        for name in names:
            p = params[name]
            flat = p.view(-1)
            for j in range(flat.numel()):
                old = flat[j].item()
                flat[j] = old + h
                plus = m(x).reshape(-1)
                flat[j] = old - h
                minus = m(x).reshape(-1)
                flat[j] = old
                cols.append((plus - minus) / (2 * h))
    return torch.stack(cols, dim=1)


def _double_copy(model: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(model).double()


@pytest.mark.parametrize("model_name", ["mlp", "cnn"])
def test_jacobian_matches_autograd_loop_all_outputs(model_name):
    model, x = _data(model_name)
    J = jacobian(model, x, chunk_size=2)
    J_ref = jacobian_loop(model, x)
    k = model(x[:1]).shape[1]
    p = sum(q.numel() for q in model.parameters())
    assert J.shape == (x.shape[0] * k, p)
    torch.testing.assert_close(J, J_ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("model_name", ["mlp", "cnn"])
def test_jacobian_matches_finite_differences_float64(model_name):
    model, x = _data(model_name, n=3)
    J = jacobian(model, x, dtype=F64)
    assert J.dtype == F64
    J_fd = finite_difference_jacobian(model, x, select_parameters(model, "all"))
    torch.testing.assert_close(J, J_fd, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("model_name", ["mlp", "cnn"])
def test_targets_select_one_row_per_example(model_name):
    model, x = _data(model_name)
    k = model(x[:1]).shape[1]
    y = torch.arange(x.shape[0]) % k
    J_all = jacobian(model, x, dtype=F64)
    J_t = jacobian(model, x, targets=y, dtype=F64)
    assert J_t.shape == (x.shape[0], J_all.shape[1])
    torch.testing.assert_close(J_t, J_all[torch.arange(x.shape[0]) * k + y])
    torch.testing.assert_close(J_t, jacobian_loop(model, x, targets=y, dtype=F64))
    # an int target means the same output for every example
    torch.testing.assert_close(jacobian(model, x, targets=1, dtype=F64), J_all[torch.arange(x.shape[0]) * k + 1])


def test_parameter_selection_last_names_and_modules():
    model, x = _data("cnn")
    assert select_parameters(model, "last") == ["fc.weight", "fc.bias"]
    assert select_parameters(model, ["conv2", "fc.bias"]) == ["conv2.weight", "fc.bias"]
    J_all = jacobian(model, x, dtype=F64)
    layout = {info.name: info for info in parameter_layout(model, "all")}
    J_last = jacobian(model, x, params="last", dtype=F64)
    cols = torch.cat([torch.arange(layout[n].start, layout[n].stop) for n in ("fc.weight", "fc.bias")])
    torch.testing.assert_close(J_last, J_all[:, cols])
    J_sel = jacobian(model, x, params=["fc.bias", "conv2"], dtype=F64)  # returned in model order
    cols = torch.cat([torch.arange(layout[n].start, layout[n].stop) for n in ("conv2.weight", "fc.bias")])
    torch.testing.assert_close(J_sel, J_all[:, cols])
    torch.testing.assert_close(J_sel, jacobian_loop(model, x, params=["conv2", "fc.bias"], dtype=F64))


def test_eval_mode_used_and_model_untouched():
    model, x = _data("cnn")
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    J = jacobian(model, x, dtype=F64)
    assert model.training and model.bn.training  # flags restored
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k  # running stats not updated, parameters not cast
    # the reference uses running statistics: compare with an eval-mode loop
    model.eval()
    torch.testing.assert_close(J, jacobian_loop(model, x, dtype=F64))


def test_linear_model_closed_form_kron():
    # f(x) = W x: ∂f_c(x_i)/∂W[c', j] = δ_{cc'} x_ij, i.e. row (i, c) is e_cᵀ ⊗ x_iᵀ (row-major vec(W))
    torch.manual_seed(3)
    d, k, n = 4, 3, 5
    lin = nn.Linear(d, k, bias=False).double()
    X = torch.randn(n, d, dtype=F64)
    J = jacobian(lin, X)
    expected = torch.cat([torch.kron(torch.eye(k, dtype=F64), X[i : i + 1]) for i in range(n)], dim=0)
    torch.testing.assert_close(J, expected)


@pytest.mark.parametrize("targets", [None, "labels"])
def test_implicit_products_match_materialised(targets):
    model, x = _data("cnn", n=7)
    y = torch.arange(7) % 4 if targets == "labels" else None
    J = jacobian(model, x, targets=y, dtype=F64)
    g = torch.Generator().manual_seed(4)
    v = torch.randn(J.shape[1], generator=g, dtype=F64)
    u = torch.randn(J.shape[0], generator=g, dtype=F64)
    op = JacobianOperator(model, x, targets=y, dtype=F64, chunk_size=3)
    assert op.shape == tuple(J.shape)
    torch.testing.assert_close(op.matvec(v), J @ v)
    torch.testing.assert_close(op.rmatvec(u), J.T @ u)
    torch.testing.assert_close(jvp_product(model, x, v, targets=y, dtype=F64, chunk_size=2), J @ v)
    torch.testing.assert_close(vjp_product(model, x, u, targets=y, dtype=F64, chunk_size=2), J.T @ u)
    V = torch.randn(J.shape[1], 2, generator=g, dtype=F64)
    torch.testing.assert_close(op.matmat(V), J @ V)
    sub = op.subset([1, 4])
    rows = 1 if y is not None else 4
    idx = torch.cat([torch.arange(i * rows, (i + 1) * rows) for i in (1, 4)])
    torch.testing.assert_close(sub.materialize(), J[idx])


@pytest.mark.parametrize("block_size", [1, 3, 100])
def test_blockwise_gram_matches_materialised(block_size):
    model, x = _data("cnn", n=5)
    J = jacobian(model, x, dtype=F64)
    G = gram_matrix(model, x, dtype=F64, block_size=block_size, chunk_size=2)
    torch.testing.assert_close(G, J @ J.T)
    assert torch.equal(G, G.T)
    y = torch.arange(5) % 4
    Jt = jacobian(model, x, targets=y, dtype=F64)
    torch.testing.assert_close(gram_matrix(model, x, targets=y, dtype=F64, block_size=block_size), Jt @ Jt.T)


def test_cross_gram_and_byte_budget():
    model, x = _data("mlp", n=6)
    x2 = x[:4] + 0.1
    J1, J2 = jacobian(model, x, dtype=F64), jacobian(model, x2, dtype=F64)
    torch.testing.assert_close(gram_matrix(model, x, x2, dtype=F64, block_size=4), J1 @ J2.T)
    # a byte budget small enough to force one example per block still gives the same Gram
    tiny = J1.shape[1] * 3 * 8
    torch.testing.assert_close(gram_matrix(model, x, dtype=F64, max_block_bytes=tiny), J1 @ J1.T)


def test_bad_input_raises_spectra_error():
    model, x = _data("mlp")
    with pytest.raises(SpectraError, match="unknown parameter"):
        jacobian(model, x, params=["nope.weight"])
    with pytest.raises(SpectraError):
        jacobian(model, x, params=[])
    bad = x.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(SpectraError, match="NaN"):
        jacobian(model, bad)
    with pytest.raises(SpectraError):
        jacobian(model, x.long())
    with pytest.raises(SpectraError):
        jacobian(model, x, targets=torch.tensor([0, 1]))  # wrong length
    with pytest.raises(SpectraError):
        jacobian(model, x, targets=torch.full((x.shape[0],), 3))  # out of range (k = 3)
    with pytest.raises(SpectraError):
        jacobian(model, x, chunk_size=0)
    with pytest.raises(SpectraError):
        jacobian(model, x, dtype=torch.int32)
    op = JacobianOperator(model, x)
    with pytest.raises(SpectraError):
        op.matvec(torch.zeros(3))
    with pytest.raises(SpectraError):
        op.rmatvec(torch.full((op.shape[0],), float("inf")))
    with pytest.raises(SpectraError):
        gram_matrix(model, x, torch.randn(3, 7))
    with pytest.raises(SpectraError):
        gram_matrix(model, x, block_size=0)
    with pytest.raises(SpectraError):
        jacobian("not a model", x)  # type: ignore[arg-type]


def test_spectra_never_imports_coreaug():
    import subprocess
    import sys

    code = "import sys, spectra, spectra.jacobian, spectra.spectrum, spectra.perturb, spectra.shift, spectra.alignment; " \
           "bad = [m for m in sys.modules if m == 'coreaug' or m.startswith('coreaug.')]; print(bad); sys.exit(1 if bad else 0)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
