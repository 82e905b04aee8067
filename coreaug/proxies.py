"""Per-example gradient proxies for coreset selection, from one batched no-grad eval pass.

For an example with logits ``z = W h + b`` (``h`` = penultimate embedding, the input of the
final linear layer), ``p = softmax(z)`` and label ``y``, the cross-entropy gradients of the last
layer are

* bias:   ``∂ℓ/∂b = p − e_y``                       (``C`` dims; ``kind="bias"``, the default)
* weight: ``∂ℓ/∂W = (p − e_y) h^T``, flattened class-major: block ``k`` is ``(p_k − [k=y]) · h``
  (``C·d`` dims; ``kind="weight"``, the official code's ``--use_linear``).

These are the proxies of CRAIG / Liu & Mirzasoleiman (2022): the full per-example gradient
difference is dominated by the last layer's (Katharopoulos & Fleuret 2018).

Cost of ``kind="weight"``: ``n · C · d · 4`` bytes (CIFAR-10 ResNet-20: 50k × 10 × 64 → 128 MB;
ImageNet ResNet-50: 1.28M × 1000 × 2048 — impossible). Pass ``proj_dim=m`` to store an ``m``-dim
random sketch instead: ``g̃ = ((A (p − e_y)) ⊙ (B h)) / √m`` with seeded Gaussian ``A ∈ R^{m×C}``,
``B ∈ R^{m×d}`` (a Khatri–Rao / tensor sketch: ``E[⟨g̃, g̃'⟩] = ⟨g, g'⟩``, so distances are preserved
in expectation) at ``O(m (C + d))`` per example, never forming the ``C·d`` vector.
The features are float32 on the CPU whatever device the pass ran on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from coreaug.device import resolve_device
from coreaug.errors import InputError
from coreaug.models import last_linear

__all__ = ["Proxies", "PROXY_KINDS", "PASS_NEEDS", "compute_proxies", "proxies_from_outputs", "extras_from_outputs"]

PROXY_KINDS: tuple[str, ...] = ("bias", "weight")
#: Selector needs (coreaug.select.registry.NEEDS) this pass can provide; ``probs``, ``embedding`` and
#: ``grad_norm`` are computed only when asked for (``needs=``), the rest always. ``history`` comes
#: from the training loop, not from here, and is ignored.
PASS_NEEDS: tuple[str, ...] = ("probs", "losses", "grad_proxy", "embedding", "grad_norm")


@dataclass
class Proxies:
    """Per-example proxies of one pass, all aligned by position (CPU tensors).

    Attributes:
        features: ``(n, D)`` float32 gradient proxies (``D = C``, ``C·d`` or ``proj_dim``).
        labels: ``(n,)`` int64 labels as returned by the dataset.
        losses: ``(n,)`` float32 per-example cross-entropy of the un-augmented examples.
        indices: ``(n,)`` int64 dataset indices (the third item of each ``(x, y, index)``).
        probs: ``(n, C)`` float32 softmax probabilities (only with ``needs`` ∋ ``"probs"``).
        embeddings: ``(n, d)`` float32 penultimate embeddings ``h`` (``needs`` ∋ ``"embedding"``).
        grad_norms: ``(n,)`` float32 norm of the last layer's CE gradient w.r.t. weight and bias,
            ``‖p − e_y‖·√(‖h‖² + 1)`` (closed form; ``needs`` ∋ ``"grad_norm"``).
    """

    features: torch.Tensor
    labels: torch.Tensor
    losses: torch.Tensor
    indices: torch.Tensor
    probs: torch.Tensor | None = None
    embeddings: torch.Tensor | None = None
    grad_norms: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.labels.numel())


def _sketch_mats(num_classes: int, dim: int, proj_dim: int, seed: int, device: torch.device):
    gen = torch.Generator().manual_seed(int(seed))
    a = torch.randn(proj_dim, num_classes, generator=gen)
    b = torch.randn(proj_dim, dim, generator=gen)
    return a.to(device), b.to(device)


def proxies_from_outputs(
    logits: torch.Tensor,
    labels: torch.Tensor,
    embedding: torch.Tensor | None = None,
    *,
    kind: str = "bias",
    sketch: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Proxies and per-example CE losses from a batch of logits (and embeddings for ``"weight"``).

    Returns ``(features, losses)`` on the logits' device; ``sketch = (A, B)`` applies the
    random sketch described in the module docstring.
    """
    logits = logits.float()
    p = torch.softmax(logits, dim=1)
    r = p.clone()
    r[torch.arange(r.shape[0], device=r.device), labels] -= 1.0  # p − e_y
    losses = F.cross_entropy(logits, labels, reduction="none")
    if kind == "bias":
        return r, losses
    if embedding is None:
        raise InputError("kind='weight' needs the penultimate embedding")
    h = embedding.float().flatten(1)
    if sketch is not None:
        a, b = sketch
        return (r @ a.T) * (h @ b.T) / (a.shape[0] ** 0.5), losses
    return (r[:, :, None] * h[:, None, :]).flatten(1), losses  # class-major (p − e_y) ⊗ h


def extras_from_outputs(
    logits: torch.Tensor, labels: torch.Tensor, embedding: torch.Tensor | None, needs: frozenset[str] | set[str]
) -> dict[str, torch.Tensor]:
    """The optional per-example outputs named in ``needs`` from one batch: ``probs`` (softmax),
    ``embeddings`` (``h`` flattened) and ``grad_norms`` (``‖p − e_y‖·√(‖h‖² + 1)``, the exact norm of
    the CE gradient w.r.t. the final linear layer's weight and bias). Float32, on the logits' device."""
    out: dict[str, torch.Tensor] = {}
    if not needs & {"probs", "embedding", "grad_norm"}:
        return out
    if needs & {"embedding", "grad_norm"} and embedding is None:
        raise InputError("the penultimate embedding was not captured (no input reached the last linear layer)")
    p = torch.softmax(logits.float(), dim=1)
    if "probs" in needs:
        out["probs"] = p
    h = embedding.float().flatten(1) if embedding is not None else None
    if "embedding" in needs:
        out["embeddings"] = h
    if "grad_norm" in needs:
        r = p.clone()
        r[torch.arange(r.shape[0], device=r.device), labels] -= 1.0
        out["grad_norms"] = r.norm(dim=1) * torch.sqrt((h * h).sum(dim=1) + 1.0)
    return out


def compute_proxies(
    model: nn.Module,
    dataset: Dataset,
    *,
    kind: str = "bias",
    batch_size: int = 512,
    device: str | torch.device | None = None,
    num_workers: int = 0,
    proj_dim: int | None = None,
    seed: int = 0,
    needs: Any = None,
) -> Proxies:
    """One ``model.eval()``, ``torch.no_grad()`` pass over ``dataset`` (items ``(x, y, index)``).

    Args:
        model: any model whose last ``nn.Linear`` (:func:`coreaug.models.last_linear`, DDP-wrapped
            models are unwrapped) produces the logits; its input is captured with a forward hook.
        dataset: use the *test-time* (un-augmented) view, as the official code does.
        kind: ``"bias"`` (``p − e_y``, C dims) or ``"weight"`` (``(p − e_y) ⊗ h``, C·d dims).
        device: where to run (``None``: the model's device; ``"auto"``: CUDA if present). The model
            must already be on it; batches are moved there.
        proj_dim: for ``kind="weight"`` only, store a seeded ``proj_dim``-dim sketch instead.
        seed: seeds the sketch matrices.
        needs: selector needs (e.g. ``coreaug.select.get_selector(name).needs``): ``"probs"``,
            ``"embedding"`` and ``"grad_norm"`` also fill :attr:`Proxies.probs` / ``embeddings`` /
            ``grad_norms`` in the same pass; features and losses are always computed.

    Every module's train/eval flag is restored afterwards, even on error.

    Raises:
        InputError: unknown ``kind``, ``proj_dim`` with ``kind="bias"``, an empty dataset, labels
            out of the logits' range, or non-finite logits.
    """
    if kind not in PROXY_KINDS:
        raise InputError(f"unknown proxy kind {kind!r}; choose one of: {', '.join(PROXY_KINDS)}")
    if proj_dim is not None and (kind != "weight" or int(proj_dim) < 1):
        raise InputError("proj_dim (a positive int) applies only to kind='weight'")
    needs = frozenset(needs or ()) - {"history"}
    if needs - set(PASS_NEEDS):
        raise InputError(f"unknown proxy-pass need(s) {sorted(needs - set(PASS_NEEDS))}; choose from: {', '.join(PASS_NEEDS)}")
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise InputError("dataset is empty; nothing to compute proxies for")
    net = getattr(model, "module", model)  # unwrap DDP: no collective ops in this local pass
    fc = last_linear(net)
    if device is None:
        param = next(net.parameters(), None)
        dev = param.device if param is not None else torch.device("cpu")
    else:
        dev = resolve_device(device)
    captured: dict[str, torch.Tensor] = {}

    def hook(_module: nn.Module, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        captured["h"] = inputs[0]
        captured["z"] = output

    sketch = None
    if proj_dim is not None:
        sketch = _sketch_mats(fc.out_features, fc.in_features, int(proj_dim), seed, dev)
    modes = {m: m.training for m in net.modules()}
    handle = fc.register_forward_hook(hook)
    feats, labels, losses, indices = [], [], [], []
    extras: dict[str, list[torch.Tensor]] = {}
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        pin_memory=dev.type == "cuda")
    try:
        net.eval()
        with torch.no_grad():
            for batch in loader:
                x, y, idx = batch[0], batch[1], batch[2]
                x = x.to(dev, non_blocking=True)
                y = torch.as_tensor(y).to(dev, torch.long, non_blocking=True)
                captured.clear()
                out = net(x)
                z = captured.get("z", out)
                if z.shape[1] != fc.out_features:
                    raise InputError(f"logits have {z.shape[1]} columns but the classifier has {fc.out_features}")
                if y.numel() and (int(y.min()) < 0 or int(y.max()) >= z.shape[1]):
                    raise InputError(f"labels must lie in [0, {z.shape[1]}) for this model, got {int(y.min())}..{int(y.max())}")
                if not bool(torch.isfinite(z).all()):
                    raise InputError("the model produced NaN/Inf logits; check the checkpoint or inputs")
                g, loss = proxies_from_outputs(z, y, captured.get("h"), kind=kind, sketch=sketch)
                feats.append(g.cpu())
                labels.append(y.cpu())
                losses.append(loss.cpu())
                indices.append(torch.as_tensor(idx, dtype=torch.long).cpu())
                for key, val in extras_from_outputs(z, y, captured.get("h"), needs).items():
                    extras.setdefault(key, []).append(val.cpu())
    finally:
        handle.remove()
        for m, was_training in modes.items():
            m.training = was_training
    return Proxies(
        features=torch.cat(feats).float().contiguous(),
        labels=torch.cat(labels),
        losses=torch.cat(losses).float(),
        indices=torch.cat(indices),
        **{key: torch.cat(vals).float().contiguous() for key, vals in extras.items()},
    )
