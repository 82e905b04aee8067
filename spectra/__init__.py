"""spectra: Jacobian spectra of neural networks under bounded input perturbations.

Plain functions over tensors and ``torch.nn.Module`` objects; works on CPU and CUDA.
"""

from spectra.errors import SpectraError

__all__ = ["SpectraError"]
