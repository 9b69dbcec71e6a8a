"""Deep clustering models as scikit-learn style estimators."""

from pydeepclust.models.base import DeepClusterer
from pydeepclust.models.genksc import GenKSC

__all__ = ["DeepClusterer", "GenKSC"]
