"""Per-example Jacobians of a network's outputs with respect to its parameters.

Notation. For a model f(θ; x) with k outputs, n examples x_1..x_n and a chosen parameter
subset θ_S with p scalars, the Jacobian is

    J ∈ R^{(n·k) × p},   row i·k + c  =  ∂ f_c(θ; x_i) / ∂θ_S     (example-major rows),

or J ∈ R^{n × p} with one chosen output per example (row i = ∂ f_{t_i}(θ; x_i)/∂θ_S, e.g. the
true-class logit when ``targets`` are the labels). Columns follow the order of
:func:`parameter_layout` (each parameter flattened row-major, concatenated).

Everything is evaluated with the model in **eval mode** (BatchNorm uses its running statistics,
Dropout is off), so each example's output depends on that example alone — the definition of a
per-example Jacobian. The model's train/eval flags are restored afterwards and the model is never
modified (parameters are passed functionally through ``torch.func.functional_call``).

Three ways to use J without materialising it:

* ``J v`` (forward mode, ``torch.func.jvp``) and ``Jᵀ u`` (reverse mode, ``torch.func.vjp``),
  chunked over examples — :class:`JacobianOperator`, :func:`jvp_product`, :func:`vjp_product`;
* the Gram / empirical NTK matrix ``J Jᵀ`` (or ``J(x) J(x')ᵀ``) assembled block by block from
  Jacobians of at most ``block_size`` examples at a time — :func:`gram_matrix`.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence, Union

import torch
from torch import Tensor, nn
from torch.func import functional_call, jacrev, jvp, vjp, vmap

from spectra.errors import SpectraError

__all__ = [
    "ParamSpec",
    "ParamInfo",
    "select_parameters",
    "parameter_layout",
    "num_outputs",
    "jacobian",
    "jacobian_loop",
    "jvp_product",
    "vjp_product",
    "gram_matrix",
    "JacobianOperator",
    "eval_mode",
    "check_finite",
]

#: Which parameters to differentiate: ``"all"``, ``"last"`` (the parameters of the last module, in
#: registration order, that owns parameters — the classifier for the usual ``... -> fc`` nets), or a
#: sequence of names, each an exact parameter name (``"fc.weight"``) or a module name (``"fc"``,
#: ``"layer3.2"``) standing for all parameters under it.
ParamSpec = Union[str, Sequence[str], None]


@dataclass(frozen=True)
class ParamInfo:
    """One differentiated parameter: its name, shape, and column range ``[start, stop)`` in J."""

    name: str
    shape: tuple[int, ...]
    start: int
    stop: int

    @property
    def numel(self) -> int:
        return self.stop - self.start


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` (and every submodule) in eval mode, restoring each module's flag on exit."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, flag in flags:
            m.training = flag


def check_finite(t: Tensor, name: str) -> None:
    """Raise :class:`SpectraError` if ``t`` holds NaN or Inf."""
    if t.is_floating_point() or t.is_complex():
        if not bool(torch.isfinite(t).all()):
            raise SpectraError(f"{name} contains NaN or Inf")


def check_batch(x: Tensor, name: str = "x") -> Tensor:
    """Validate a floating, finite batch with a non-empty leading dimension; return it unchanged."""
    if not isinstance(x, Tensor):
        raise SpectraError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim < 1 or x.shape[0] == 0:
        raise SpectraError(f"{name} must have a non-empty leading batch dimension, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise SpectraError(f"{name} must be a floating tensor, got {x.dtype}")
    check_finite(x, name)
    return x


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


def _selected_names(model: nn.Module, params: ParamSpec) -> list[str]:
    named = [name for name, _ in model.named_parameters()]
    if not named:
        raise SpectraError(f"model {type(model).__name__} has no parameters")
    if params is None or (isinstance(params, str) and params == "all"):
        return named
    if isinstance(params, str) and params == "last":
        last: list[str] = []
        for mod_name, module in model.named_modules():
            own = [n for n, _ in module.named_parameters(recurse=False)]
            if own:
                last = [f"{mod_name}.{n}" if mod_name else n for n in own]
        return last
    if isinstance(params, str):
        # a single name given as a bare string
        params = [params]
    wanted = list(params)
    if not wanted:
        raise SpectraError("params is an empty list; pass 'all', 'last' or parameter/module names")
    module_names = {n for n, _ in model.named_modules() if n}
    chosen: set[str] = set()
    for w in wanted:
        if not isinstance(w, str):
            raise SpectraError(f"parameter names must be strings, got {type(w).__name__}")
        if w in named:
            chosen.add(w)
        elif w in module_names:
            under = [n for n in named if n.startswith(w + ".")]
            if not under:
                raise SpectraError(f"module {w!r} has no parameters")
            chosen.update(under)
        else:
            sample = ", ".join(named[:6]) + (", ..." if len(named) > 6 else "")
            raise SpectraError(f"unknown parameter or module name {w!r}; parameters are: {sample}")
    return [n for n in named if n in chosen]  # keep the model's order


def select_parameters(model: nn.Module, params: ParamSpec = "all") -> list[str]:
    """Names of the parameters selected by ``params`` (see :data:`ParamSpec`), in model order."""
    return _selected_names(model, params)


def parameter_layout(model: nn.Module, params: ParamSpec = "all") -> list[ParamInfo]:
    """Column layout of J: one :class:`ParamInfo` per selected parameter, in column order."""
    shapes = dict((n, tuple(p.shape)) for n, p in model.named_parameters())
    out, start = [], 0
    for n in _selected_names(model, params):
        size = math.prod(shapes[n]) if shapes[n] else 1
        out.append(ParamInfo(n, shapes[n], start, start + size))
        start += size
    return out


def _resolve_dtype(model: nn.Module, dtype: torch.dtype | None) -> torch.dtype:
    if dtype is not None:
        if not dtype.is_floating_point:
            raise SpectraError(f"dtype must be a floating dtype, got {dtype}")
        return dtype
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.get_default_dtype()


class _Functional:
    """The model as a pure function of (selected parameters, batch) — shared by all entry points."""

    def __init__(self, model: nn.Module, params: ParamSpec, dtype: torch.dtype | None):
        if not isinstance(model, nn.Module):
            raise SpectraError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.names = _selected_names(model, params)
        self.layout = parameter_layout(model, self.names)
        self.p = self.layout[-1].stop
        self.dtype = _resolve_dtype(model, dtype)
        self.device = _model_device(model)
        sel = set(self.names)

        def cast(t: Tensor) -> Tensor:
            t = t.detach()
            return t.to(self.dtype) if t.is_floating_point() else t

        named_p = dict(model.named_parameters())
        # θ_S: differentiated; everything else (other parameters, buffers) is held constant.
        self.primals: dict[str, Tensor] = {n: cast(named_p[n]) for n in self.names}
        self.rest: dict[str, Tensor] = {n: cast(t) for n, t in named_p.items() if n not in sel}
        self.rest.update({n: cast(b) for n, b in model.named_buffers()})

    def forward(self, theta: dict[str, Tensor], x: Tensor) -> Tensor:
        """Batched forward f(θ; x) → (b, k) with θ_S = ``theta`` (eval mode is set by the caller)."""
        out = functional_call(self.model, (theta, self.rest), (x,), strict=False)
        if not isinstance(out, Tensor):
            raise SpectraError(f"model must return a tensor, got {type(out).__name__}")
        return out.reshape(out.shape[0], -1)

    def prepare_x(self, x: Tensor, name: str = "x") -> Tensor:
        return check_batch(x, name).detach().to(device=self.device, dtype=self.dtype)

    def num_outputs(self, x: Tensor) -> int:
        with torch.no_grad(), eval_mode(self.model):
            return int(self.forward(self.primals, x[:1]).shape[1])

    def prepare_targets(self, targets: Tensor | int | None, n: int, k: int) -> Tensor | None:
        if targets is None:
            return None
        if isinstance(targets, int):
            targets = torch.full((n,), targets, dtype=torch.long)
        if not isinstance(targets, Tensor):
            targets = torch.as_tensor(targets)
        if targets.dtype.is_floating_point or targets.dtype == torch.bool:
            raise SpectraError(f"targets must be integer class indices, got {targets.dtype}")
        if targets.shape != (n,):
            raise SpectraError(f"targets must have shape ({n},), got {tuple(targets.shape)}")
        if n and (int(targets.min()) < 0 or int(targets.max()) >= k):
            raise SpectraError(f"targets must lie in [0, {k}) (the model has {k} outputs)")
        return targets.to(device=self.device, dtype=torch.long)

    def flatten(self, tree: dict[str, Tensor], lead: int) -> Tensor:
        """Concatenate per-parameter blocks with ``lead`` leading dims into (..., p) columns."""
        return torch.cat([tree[n].reshape(*tree[n].shape[:lead], -1) for n in self.names], dim=-1)

    def unflatten(self, v: Tensor) -> dict[str, Tensor]:
        return {info.name: v[info.start : info.stop].reshape(info.shape) for info in self.layout}


def _check_chunk(chunk_size: int) -> int:
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise SpectraError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    return chunk_size


def num_outputs(model: nn.Module, x: Tensor) -> int:
    """Number k of outputs of ``model`` per example (one forward pass on ``x[:1]``)."""
    fn = _Functional(model, "all", None)
    return fn.num_outputs(fn.prepare_x(x))


# ----------------------------------------------------------------------------------------------
# materialised Jacobian
# ----------------------------------------------------------------------------------------------


def _jacobian_prepared(
    fn: _Functional, x: Tensor, targets: Tensor | None, chunk_size: int, out: Tensor | None = None
) -> Tensor:
    n = x.shape[0]

    # one example: f(θ; x_i) ∈ R^k (or the scalar f_{t_i}) — per-example function for vmap∘jacrev
    def single(theta: dict[str, Tensor], xi: Tensor) -> Tensor:
        return fn.forward(theta, xi.unsqueeze(0)).squeeze(0)

    def single_t(theta: dict[str, Tensor], xi: Tensor, ti: Tensor) -> Tensor:
        return single(theta, xi).gather(0, ti.reshape(1)).squeeze(0)

    if targets is None:
        per_ex = vmap(jacrev(single), in_dims=(None, 0))
    else:
        per_ex = vmap(jacrev(single_t), in_dims=(None, 0, 0))
    pieces: list[Tensor] = []
    row = 0
    with eval_mode(fn.model):
        for s in range(0, n, chunk_size):
            xs = x[s : s + chunk_size]
            tree = per_ex(fn.primals, xs) if targets is None else per_ex(fn.primals, xs, targets[s : s + chunk_size])
            # tree[name]: (b, k, *shape) or (b, *shape) → (b·k, p) rows, example-major
            lead = 1 if targets is not None else 2
            block = fn.flatten(tree, lead).reshape(-1, fn.p)
            del tree
            if out is not None:
                out[row : row + block.shape[0]].copy_(block)
            else:
                pieces.append(block)
            row += block.shape[0]
            del block
    return out if out is not None else torch.cat(pieces, dim=0)


def jacobian(
    model: nn.Module,
    x: Tensor,
    *,
    params: ParamSpec = "all",
    targets: Tensor | int | None = None,
    dtype: torch.dtype | None = None,
    chunk_size: int = 64,
) -> Tensor:
    """Per-example Jacobian of the outputs w.r.t. the selected parameters (vmap∘jacrev, chunked).

    Args:
        model: any ``nn.Module`` mapping a batch (b, ...) to outputs (b, k) (extra output dims are
            flattened). Evaluated in eval mode; not modified.
        x: inputs (n, ...); moved to the model's device and ``dtype``.
        params: which parameters to differentiate (see :data:`ParamSpec`).
        targets: ``None`` for all k outputs → (n·k, p); or one output index per example (a (n,)
            integer tensor, e.g. labels, or an int for the same output everywhere) → (n, p).
        dtype: compute in this dtype (e.g. ``torch.float64`` for spectra); default: the model's.
        chunk_size: examples per vmap call (bounds the intermediate memory).

    Returns:
        J with rows ordered example-major (row i·k + c is ∂f_c(x_i)/∂θ) and columns as in
        :func:`parameter_layout`.
    """
    chunk_size = _check_chunk(chunk_size)
    fn = _Functional(model, params, dtype)
    x = fn.prepare_x(x)
    k = fn.num_outputs(x)
    t = fn.prepare_targets(targets, x.shape[0], k)
    return _jacobian_prepared(fn, x, t, chunk_size)


def jacobian_loop(
    model: nn.Module,
    x: Tensor,
    *,
    params: ParamSpec = "all",
    targets: Tensor | int | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Reference implementation: one ``torch.autograd.grad`` call per example and output.

    Same contract and layout as :func:`jacobian`; O(n·k) backward passes — for tests and
    benchmarks only.
    """
    fn = _Functional(model, params, dtype)
    x = fn.prepare_x(x)
    k = fn.num_outputs(x)
    t = fn.prepare_targets(targets, x.shape[0], k)
    theta = {n: v.clone().requires_grad_(True) for n, v in fn.primals.items()}
    leaves = [theta[n] for n in fn.names]
    rows: list[Tensor] = []
    with eval_mode(fn.model), torch.enable_grad():
        for i in range(x.shape[0]):
            out = fn.forward(theta, x[i : i + 1])[0]
            outs = range(k) if t is None else [int(t[i])]
            for c in outs:
                grads = torch.autograd.grad(out[c], leaves, retain_graph=True, allow_unused=True)
                rows.append(
                    torch.cat([(g if g is not None else torch.zeros_like(l)).reshape(-1) for g, l in zip(grads, leaves)])
                )
    return torch.stack(rows)


# ----------------------------------------------------------------------------------------------
# implicit products J v, Jᵀ u
# ----------------------------------------------------------------------------------------------


class JacobianOperator:
    """The per-example Jacobian J of ``model`` on ``x`` as an implicit linear operator.

    ``matvec(v) = J v`` uses forward mode (``torch.func.jvp``) and ``rmatvec(u) = Jᵀ u`` reverse
    mode (``torch.func.vjp``), each over chunks of ``chunk_size`` examples with a *batched* forward
    pass: in eval mode examples do not interact, so the batched forward's Jacobian is exactly the
    stacked per-example Jacobian. Memory is that of one forward/backward on a chunk; J is never
    formed. Shape (N, p) with N = n·k (all outputs) or n (``targets`` given).
    """

    def __init__(
        self,
        model: nn.Module,
        x: Tensor,
        *,
        params: ParamSpec = "all",
        targets: Tensor | int | None = None,
        dtype: torch.dtype | None = None,
        chunk_size: int = 256,
    ):
        self.chunk_size = _check_chunk(chunk_size)
        self._fn = _Functional(model, params, dtype)
        self.x = self._fn.prepare_x(x)
        self.n = int(self.x.shape[0])
        self.k = self._fn.num_outputs(self.x)
        self.targets = self._fn.prepare_targets(targets, self.n, self.k)
        self.rows_per_example = self.k if self.targets is None else 1
        self.shape = (self.n * self.rows_per_example, self._fn.p)
        self.dtype = self._fn.dtype
        self.device = self._fn.device
        self.layout = self._fn.layout

    @property
    def param_names(self) -> list[str]:
        return list(self._fn.names)

    def _chunk_fn(self, s: int) -> Callable[[dict[str, Tensor]], Tensor]:
        xs = self.x[s : s + self.chunk_size]
        ts = None if self.targets is None else self.targets[s : s + self.chunk_size]

        def f(theta: dict[str, Tensor]) -> Tensor:
            out = self._fn.forward(theta, xs)
            if ts is not None:
                out = out.gather(1, ts.unsqueeze(1))
            return out.reshape(-1)  # example-major rows of this chunk

        return f

    def _vec(self, v: Tensor, size: int, name: str) -> Tensor:
        v = torch.as_tensor(v)
        if v.ndim != 1 or v.shape[0] != size:
            raise SpectraError(f"{name} must be a vector of length {size}, got shape {tuple(v.shape)}")
        check_finite(v, name)
        return v.to(device=self.device, dtype=self.dtype)

    def matvec(self, v: Tensor) -> Tensor:
        """J v for v ∈ R^p (forward mode): returns a length-N vector."""
        v = self._vec(v, self.shape[1], "v")
        tangent = self._fn.unflatten(v)
        outs = []
        with eval_mode(self._fn.model):
            for s in range(0, self.n, self.chunk_size):
                _, jv = jvp(self._chunk_fn(s), (self._fn.primals,), (tangent,))
                outs.append(jv.detach())
        return torch.cat(outs)

    def rmatvec(self, u: Tensor) -> Tensor:
        """Jᵀ u for u ∈ R^N (reverse mode): returns a length-p vector (summed over chunks)."""
        u = self._vec(u, self.shape[0], "u")
        total = torch.zeros(self.shape[1], device=self.device, dtype=self.dtype)
        r = self.rows_per_example
        with eval_mode(self._fn.model):
            for s in range(0, self.n, self.chunk_size):
                _, pullback = vjp(self._chunk_fn(s), self._fn.primals)
                rows = u[s * r : min(s + self.chunk_size, self.n) * r]
                (g,) = pullback(rows)
                total += self._fn.flatten(g, 0).detach()
        return total

    def matmat(self, v: Tensor) -> Tensor:
        """J V for V ∈ R^{p×m} (one forward-mode pass per column)."""
        if v.ndim != 2:
            raise SpectraError(f"matmat expects a (p, m) matrix, got shape {tuple(v.shape)}")
        return torch.stack([self.matvec(v[:, j]) for j in range(v.shape[1])], dim=1)

    def rmatmat(self, u: Tensor) -> Tensor:
        """Jᵀ U for U ∈ R^{N×m} (one reverse-mode pass per column)."""
        if u.ndim != 2:
            raise SpectraError(f"rmatmat expects a (N, m) matrix, got shape {tuple(u.shape)}")
        return torch.stack([self.rmatvec(u[:, j]) for j in range(u.shape[1])], dim=1)

    def subset(self, indices: Tensor | Sequence[int]) -> "JacobianOperator":
        """The operator restricted to examples ``indices`` (rows of those examples, same columns)."""
        idx = torch.as_tensor(indices, device=self.x.device)
        if idx.ndim != 1 or idx.dtype.is_floating_point or idx.dtype == torch.bool:
            raise SpectraError("indices must be a 1-D integer tensor/sequence")
        if idx.numel() == 0 or int(idx.min()) < 0 or int(idx.max()) >= self.n:
            raise SpectraError(f"indices must be non-empty and lie in [0, {self.n})")
        new = object.__new__(JacobianOperator)
        new.__dict__.update(self.__dict__)
        new.x = self.x[idx.long()]
        new.n = int(idx.numel())
        new.targets = None if self.targets is None else self.targets[idx.long()]
        new.shape = (new.n * self.rows_per_example, self.shape[1])
        return new

    def materialize(self, chunk_size: int = 64) -> Tensor:
        """The full J (N, p) via :func:`jacobian` (same layout)."""
        return _jacobian_prepared(self._fn, self.x, self.targets, _check_chunk(chunk_size))

    def gram(self, *, block_size: int | None = None, max_block_bytes: int = 512 * 2**20, chunk_size: int = 64) -> Tensor:
        """J Jᵀ (N, N), assembled blockwise (see :func:`gram_matrix`)."""
        return _gram_prepared(self._fn, self.x, self.targets, None, None, block_size, max_block_bytes, chunk_size)

    def to_scipy(self):  # -> scipy.sparse.linalg.LinearOperator
        """A float64 ``scipy.sparse.linalg.LinearOperator`` with J v / Jᵀ u (for ``svds``)."""
        import numpy as np
        from scipy.sparse.linalg import LinearOperator

        def mv(v):
            return self.matvec(torch.from_numpy(np.asarray(v, dtype=np.float64).reshape(-1))).cpu().double().numpy()

        def rmv(u):
            return self.rmatvec(torch.from_numpy(np.asarray(u, dtype=np.float64).reshape(-1))).cpu().double().numpy()

        return LinearOperator(self.shape, matvec=mv, rmatvec=rmv, dtype=np.float64)


def jvp_product(
    model: nn.Module,
    x: Tensor,
    v: Tensor,
    *,
    params: ParamSpec = "all",
    targets: Tensor | int | None = None,
    dtype: torch.dtype | None = None,
    chunk_size: int = 256,
) -> Tensor:
    """J v without forming J (forward mode, chunked); see :class:`JacobianOperator`."""
    return JacobianOperator(model, x, params=params, targets=targets, dtype=dtype, chunk_size=chunk_size).matvec(v)


def vjp_product(
    model: nn.Module,
    x: Tensor,
    u: Tensor,
    *,
    params: ParamSpec = "all",
    targets: Tensor | int | None = None,
    dtype: torch.dtype | None = None,
    chunk_size: int = 256,
) -> Tensor:
    """Jᵀ u without forming J (reverse mode, chunked); see :class:`JacobianOperator`."""
    return JacobianOperator(model, x, params=params, targets=targets, dtype=dtype, chunk_size=chunk_size).rmatvec(u)


# ----------------------------------------------------------------------------------------------
# blockwise Gram / NTK
# ----------------------------------------------------------------------------------------------


def _gram_prepared(
    fn: _Functional,
    x: Tensor,
    t: Tensor | None,
    x2: Tensor | None,
    t2: Tensor | None,
    block_size: int | None,
    max_block_bytes: int,
    chunk_size: int,
) -> Tensor:
    k = fn.num_outputs(x)
    r = k if t is None else 1
    r2 = r if x2 is None else (k if t2 is None else 1)
    itemsize = torch.empty((), dtype=fn.dtype).element_size()
    if block_size is None:
        # a block of J holds (block·r) × p entries; keep two of them under the byte budget
        block_size = max(1, int(max_block_bytes // max(1, r * fn.p * itemsize)))
    if not isinstance(block_size, int) or block_size < 1:
        raise SpectraError(f"block_size must be a positive integer, got {block_size!r}")
    n1 = x.shape[0]
    sym = x2 is None
    xb, tb = (x, t) if sym else (x2, t2)
    n2 = xb.shape[0]
    G = torch.empty(n1 * r, n2 * r2, device=fn.device, dtype=fn.dtype)

    def jac(xx: Tensor, tt: Tensor | None, s: int, e: int) -> Tensor:
        return _jacobian_prepared(fn, xx[s:e], None if tt is None else tt[s:e], min(chunk_size, e - s))

    # G[a, b] = J_a J_bᵀ: hold one row-block J_a, stream the column blocks J_b (b ≥ a if symmetric)
    for a0 in range(0, n1, block_size):
        a1 = min(a0 + block_size, n1)
        Ja = jac(x, t, a0, a1)
        b_start = a0 if sym else 0
        for b0 in range(b_start, n2, block_size):
            b1 = min(b0 + block_size, n2)
            Jb = Ja if (sym and b0 == a0) else jac(xb, tb, b0, b1)
            blk = Ja @ Jb.T
            G[a0 * r : a1 * r, b0 * r2 : b1 * r2] = blk
            if sym and b0 != a0:
                G[b0 * r : b1 * r, a0 * r : a1 * r] = blk.T
            del Jb, blk
        del Ja
    if sym:
        G = 0.5 * (G + G.T)  # exact symmetry (blocks on the diagonal are symmetric up to rounding)
    return G


def gram_matrix(
    model: nn.Module,
    x: Tensor,
    x2: Tensor | None = None,
    *,
    params: ParamSpec = "all",
    targets: Tensor | int | None = None,
    targets2: Tensor | int | None = None,
    dtype: torch.dtype | None = None,
    block_size: int | None = None,
    max_block_bytes: int = 512 * 2**20,
    chunk_size: int = 64,
) -> Tensor:
    """Gram / empirical NTK matrix J(x) J(x)ᵀ (or the cross Gram J(x) J(x2)ᵀ), blockwise.

    J is never materialised for all examples at once: Jacobians of at most ``block_size``
    examples are formed (two blocks alive at a time), multiplied, and freed. With
    ``block_size=None`` the block is sized so one block of J takes at most ``max_block_bytes``
    (so peak memory ≈ 2·max_block_bytes + the (N × N) result + vmap intermediates of one chunk).
    The cost is B(B+1)/2 block Jacobians for B blocks (a single pass when J fits the budget).

    Rows/columns are example-major as in :func:`jacobian` (``targets``/``targets2`` select one
    output per example of ``x``/``x2``).
    """
    chunk_size = _check_chunk(chunk_size)
    if not isinstance(max_block_bytes, int) or max_block_bytes <= 0:
        raise SpectraError(f"max_block_bytes must be a positive integer, got {max_block_bytes!r}")
    fn = _Functional(model, params, dtype)
    x = fn.prepare_x(x)
    k = fn.num_outputs(x)
    t = fn.prepare_targets(targets, x.shape[0], k)
    t2 = None
    if x2 is not None:
        x2 = fn.prepare_x(x2, "x2")
        if x2.shape[1:] != x.shape[1:]:
            raise SpectraError(f"x2 must have per-example shape {tuple(x.shape[1:])}, got {tuple(x2.shape[1:])}")
        t2 = fn.prepare_targets(targets2, x2.shape[0], k)
    elif targets2 is not None:
        raise SpectraError("targets2 given without x2")
    return _gram_prepared(fn, x, t, x2, t2, block_size, max_block_bytes, chunk_size)
