"""pydeepclust: interpretable deep clustering with fused C++/CUDA ops for PyTorch.

The fast ops live in :mod:`pydeepclust.ops` (also reachable as
``torch.ops.pydeepclust.*`` once the extension is loaded).
"""

from pydeepclust import ops
from pydeepclust.ops import backend, build_info

__version__ = "0.1.0"
__all__ = ["ops", "backend", "build_info", "__version__"]
