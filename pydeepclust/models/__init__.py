"""Deep clustering models as scikit-learn style estimators."""

from pydeepclust.models.base import DeepClusterer

__all__ = ["DeepClusterer"]
