"""What methods without a network reach on digits 0/1/2 (README, GenKSC results): k-means,
a Gaussian mixture on 10 PCA components, spectral clustering on kNN graphs, t-SNE + k-means.

  python benchmarks/digits012_references.py
"""

from __future__ import annotations


def main() -> None:
    from sklearn.cluster import KMeans, SpectralClustering
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from sklearn.mixture import GaussianMixture

    from pydeepclust.data import load_dataset
    from pydeepclust.metrics import cluster_report

    ds = load_dataset("digits012")
    X, y = ds.X, ds.y
    runs = {
        "k-means (10 starts)": lambda: KMeans(3, n_init=10, random_state=0).fit_predict(X),
        "GMM on 10 PCA components": lambda: GaussianMixture(3, n_init=5, random_state=0)
        .fit_predict(PCA(10, random_state=0).fit_transform(X)),
        **{f"spectral, kNN graph ({m} neighbours)": (lambda m=m: SpectralClustering(
            3, affinity="nearest_neighbors", n_neighbors=m, random_state=0).fit_predict(X))
           for m in (10, 20, 40)},
        **{f"t-SNE (perplexity {p}) + k-means": (lambda p=p: KMeans(3, n_init=10, random_state=0)
           .fit_predict(TSNE(2, perplexity=p, random_state=0).fit_transform(X)))
           for p in (10, 30)},
    }
    print("| method | NMI | ACC |\n|---|---|---|")
    for name, run in runs.items():
        r = cluster_report(y, run())
        print(f"| {name} | {r['nmi']:.3f} | {r['acc']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
