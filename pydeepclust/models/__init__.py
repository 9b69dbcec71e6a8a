"""Deep clustering models as scikit-learn style estimators."""

from pydeepclust.models.acedec import DCN, ACeDeC
from pydeepclust.models.autoencoder import Autoencoder, pretrain_autoencoder
from pydeepclust.models.base import DeepClusterer
from pydeepclust.models.baselines import AEKMeans, KMeansBaseline, SpectralBaseline
from pydeepclust.models.genksc import GenKSC
from pydeepclust.models.ksc import KSC
from pydeepclust.models.rsm import RSM
from pydeepclust.models.subkmeans import SubKMeans

__all__ = ["ACeDeC", "AEKMeans", "Autoencoder", "DCN", "DeepClusterer", "GenKSC",
           "KMeansBaseline", "KSC", "RSM", "SpectralBaseline", "SubKMeans", "pretrain_autoencoder"]
