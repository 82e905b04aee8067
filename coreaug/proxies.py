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
The features are float32, on the CPU unless ``out_device`` says otherwise, whatever device the pass
ran on (on CUDA the forward runs under autocast; the classifier is recomputed in float32).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from coreaug.data.base import TensorDataset

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
    """Per-example proxies of one pass, all aligned by position (CPU tensors unless
    :func:`compute_proxies` was asked to keep ``features`` on its device).

    Attributes:
        features: ``(n, D)`` float32 gradient proxies (``D = C``, ``C·d`` or ``proj_dim``).
        labels: ``(n,)`` int64 labels as returned by the dataset.
        losses: ``(n,)`` float32 per-example cross-entropy of the un-augmented examples.
        indices: ``(n,)`` int64 dataset indices (the third item of each ``(x, y, index)``).
        probs: ``(n, C)`` float32 softmax probabilities (only with ``needs`` ∋ ``"probs"``; CPU).
        embeddings: ``(n, d)`` float32 penultimate embeddings ``h`` (``needs`` ∋ ``"embedding"``;
            on ``out_device`` like ``features``).
        grad_norms: ``(n,)`` float32 norm of the last layer's CE gradient w.r.t. weight and bias,
            ``‖p − e_y‖·√(‖h‖² + 1)`` (closed form; ``needs`` ∋ ``"grad_norm"``; CPU).
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


def _batches(dataset: Dataset, positions: torch.Tensor | None, batch_size: int, num_workers: int, pin: bool
             ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """``(x, y, index)`` batches over ``dataset`` (or the given positions of it), in order.

    An in-memory :class:`~coreaug.data.base.TensorDataset` (the materialised test-time view the
    training loop uses) is sliced directly, a batch at a time: no per-example ``__getitem__``
    calls, which on a GPU would cost more than the forward pass itself.
    """
    if isinstance(dataset, TensorDataset):
        n = len(dataset)
        for s in range(0, n if positions is None else positions.numel(), batch_size):
            if positions is None:
                idx = torch.arange(s, min(s + batch_size, n))
                yield dataset.x[s: s + batch_size], dataset.targets[s: s + batch_size], idx
            else:
                idx = positions[s: s + batch_size]
                yield dataset.x.index_select(0, idx), dataset.targets.index_select(0, idx), idx
        return
    src = dataset if positions is None else Subset(dataset, positions.tolist())
    # its own generator: iterating a DataLoader draws a base seed, which would advance the global RNG
    loader = DataLoader(src, batch_size=batch_size, shuffle=False, num_workers=num_workers, pin_memory=pin,
                        generator=torch.Generator())
    for batch in loader:
        yield batch[0], torch.as_tensor(batch[1]), torch.as_tensor(batch[2], dtype=torch.long)


def _amp_dtype(dev: torch.device, amp: bool | None) -> torch.dtype | None:
    if dev.type != "cuda" or amp is False:
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


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
    batch_size: int | str | None = None,
    device: str | torch.device | None = None,
    num_workers: int = 0,
    proj_dim: int | None = None,
    seed: int = 0,
    indices: Sequence[int] | torch.Tensor | None = None,
    amp: bool | None = None,
    channels_last: bool | None = None,
    out_device: str | torch.device | None = "cpu",
    needs: Any = None,
    head: nn.Module | None = None,
) -> Proxies:
    """One ``model.eval()``, ``torch.no_grad()`` pass over ``dataset`` (items ``(x, y, index)``).

    Args:
        model: any model whose last ``nn.Linear`` (:func:`coreaug.models.last_linear`, DDP-wrapped
            models are unwrapped) produces the logits; its input is captured with a forward hook.
        dataset: use the *test-time* (un-augmented) view, as the official code does.
        kind: ``"bias"`` (``p − e_y``, C dims) or ``"weight"`` (``(p − e_y) ⊗ h``, C·d dims).
        batch_size: inference batch; ``None``/``"auto"``: :data:`coreaug.device.AUTO_EVAL_BATCH`
            (64 on CPU, where larger batches run *slower*; 1024 on CUDA).
        device: where to run (``None``: the model's device; ``"auto"``: CUDA if present). The model
            must already be on it; batches are moved there.
        proj_dim: for ``kind="weight"`` only, store a seeded ``proj_dim``-dim sketch instead.
        seed: seeds the sketch matrices.
        indices: run on these dataset positions only (in this order; e.g. a proxy pool or a DDP
            shard); ``Proxies.indices`` still holds each example's dataset index.
        amp: autocast the forward (bf16 where supported, else fp16); ``None``: on CUDA only. The
            last layer is recomputed in float32 from the captured embedding, so logits, proxies
            and losses are float32. Ignored on CPU (CPU proxies are exact float32).
        channels_last: feed 4-D inputs in channels-last layout (the model itself is not touched);
            ``None``: on CUDA when the model has a ``Conv2d``.
        out_device: where ``features`` end up (``None``: the device of the pass, e.g. to select
            on the GPU without a round trip). Labels, losses and indices are always on the CPU.
        needs: selector needs (e.g. ``coreaug.select.get_selector(name).needs``): ``"probs"``,
            ``"embedding"`` and ``"grad_norm"`` also fill :attr:`Proxies.probs` / ``embeddings`` /
            ``grad_norms`` in the same pass; features and losses are always computed.
        head: the layer whose output are the logits (default: :func:`coreaug.models.last_linear`);
            its input is the embedding ``h`` of ``kind="weight"`` and the embedding selectors.

    Nothing waits for the device inside the loop: features and losses accumulate in preallocated
    device buffers, labels are checked on the host before they are moved, and the finiteness check
    is one flag read after the pass. Every module's train/eval flag is restored afterwards, even on
    error.

    Raises:
        InputError: unknown ``kind``, ``proj_dim`` with ``kind="bias"``, an empty dataset, labels
            out of the logits' range, or non-finite logits.
    """
    from coreaug.device import resolve_eval_batch_size

    if kind not in PROXY_KINDS:
        raise InputError(f"unknown proxy kind {kind!r}; choose one of: {', '.join(PROXY_KINDS)}")
    if proj_dim is not None and (kind != "weight" or int(proj_dim) < 1):
        raise InputError("proj_dim (a positive int) applies only to kind='weight'")
    needs = frozenset(needs or ()) - {"history"}
    if needs - set(PASS_NEEDS):
        raise InputError(f"unknown proxy-pass need(s) {sorted(needs - set(PASS_NEEDS))}; choose from: {', '.join(PASS_NEEDS)}")
    positions = None if indices is None else torch.as_tensor(indices, dtype=torch.long).flatten()
    m = len(dataset) if positions is None else int(positions.numel())  # type: ignore[arg-type]
    if m == 0:
        raise InputError("dataset is empty; nothing to compute proxies for")
    net = getattr(model, "module", model)  # unwrap DDP: no collective ops in this local pass
    fc = head if head is not None else last_linear(net)
    if device is None:
        param = next(net.parameters(), None)
        dev = param.device if param is not None else torch.device("cpu")
    else:
        dev = resolve_device(device)
    bs = resolve_eval_batch_size(batch_size, dev)
    if bs < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size!r}")
    amp_dtype = _amp_dtype(dev, amp)
    if channels_last is None:
        channels_last = dev.type == "cuda" and any(isinstance(mod, nn.Conv2d) for mod in net.modules())
    captured: dict[str, torch.Tensor] = {}

    def hook(_module: nn.Module, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        captured["h"] = inputs[0]
        captured["z"] = output

    sketch = None
    if proj_dim is not None:
        sketch = _sketch_mats(fc.out_features, fc.in_features, int(proj_dim), seed, dev)
    num_classes = fc.out_features
    modes = {mod: mod.training for mod in net.modules()}
    handle = fc.register_forward_hook(hook)
    feats: torch.Tensor | None = None
    losses = torch.empty(m, dtype=torch.float32, device=dev)
    finite = torch.ones((), dtype=torch.bool, device=dev)
    labels, index_parts = [], []
    extra_bufs: dict[str, torch.Tensor] = {}  # probs / embeddings / grad_norms when needed
    s = 0
    try:
        net.eval()
        with torch.no_grad():
            for x, y, idx in _batches(dataset, positions, bs, num_workers, dev.type == "cuda"):
                y = y.to(torch.long)
                if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):  # host tensor: no sync
                    raise InputError(f"labels must lie in [0, {num_classes}) for this model, "
                                     f"got {int(y.min())}..{int(y.max())}")
                labels.append(y)
                index_parts.append(idx)
                x = x.to(dev, non_blocking=True)
                if channels_last and x.ndim == 4:
                    x = x.contiguous(memory_format=torch.channels_last)
                yd = y.to(dev, non_blocking=True)
                captured.clear()
                with torch.autocast("cuda", dtype=amp_dtype) if amp_dtype is not None else nullcontext():
                    out = net(x)
                z = captured.get("z", out)
                if z.shape[1] != num_classes:
                    raise InputError(f"logits have {z.shape[1]} columns but the classifier has {num_classes}")
                h = captured.get("h")
                if amp_dtype is not None and h is not None and "z" in captured:
                    # the classifier again in float32 (C×d, negligible): float32 logits for the proxies
                    h = h.float()
                    z = F.linear(h, fc.weight.float(), None if fc.bias is None else fc.bias.float())
                finite &= torch.isfinite(z).all()
                g, loss = proxies_from_outputs(z, yd, h, kind=kind, sketch=sketch)
                if feats is None:
                    feats = torch.empty((m, g.shape[1]), dtype=torch.float32, device=dev)
                b = g.shape[0]
                feats[s: s + b] = g
                losses[s: s + b] = loss
                for key, val in extras_from_outputs(z, yd, h, needs).items():
                    if key not in extra_bufs:
                        extra_bufs[key] = torch.empty((m, *val.shape[1:]), dtype=torch.float32, device=dev)
                    extra_bufs[key][s: s + b] = val
                s += b
    finally:
        handle.remove()
        for mod, was_training in modes.items():
            mod.training = was_training
    if not bool(finite):  # the one device → host sync of the pass
        raise InputError("the model produced NaN/Inf logits; check the checkpoint or inputs")
    assert feats is not None and s == m
    target = dev if out_device is None else resolve_device(out_device)
    return Proxies(
        features=feats.to(target).contiguous(),
        labels=torch.cat(labels),
        losses=losses.cpu(),
        indices=torch.cat(index_parts),
        **{key: buf.to(target if key == "embeddings" else "cpu").contiguous() for key, buf in extra_bufs.items()},
    )
