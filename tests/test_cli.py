"""The command line: every model on non-image data, results kept when a picture fails,
bad option values answered with a one-line error (exit 2) that names them."""

import json
import os

import pytest

import pydeepclust.models.genksc as genksc_module
from pydeepclust.cli import main as cli_main

NET = ["--hidden", "16", "--latent-dim", "3", "--pretrain-epochs", "1"]
FAST = {
    "genksc": ["--epochs", "2", "--warmup", "1"],
    "rsm": ["--epochs", "2", "--hidden", "16"],
    "ksc": [],
    "acedec": ["--epochs", "1", *NET],
    "dcn": ["--epochs", "1", *NET],
    "ae-kmeans": NET,
    "kmeans": [],
    "subkmeans": [],
    "spectral": [],
}


@pytest.mark.parametrize("model", sorted(FAST))
def test_every_model_fits_non_image_data(model, tmp_path, capsys):
    out = tmp_path / model
    assert cli_main(["fit", model, "--data", "blobs", "--quiet", "--out", str(out),
                     *FAST[model]]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 <= metrics["train"]["nmi"] <= 1
    assert (out / "model.pt").stat().st_size > 0
    assert all(os.path.getsize(path) > 0 for path in metrics["files"].values())
    assert f"{model} on blobs: NMI" in capsys.readouterr().out


def test_genksc_on_images_draws_traversals_and_on_points_only_scores(tmp_path):
    for data, pictures in (("digits012", {"traversals", "components", "scores"}),
                           ("blobs", {"scores"})):
        out = tmp_path / data
        assert cli_main(["fit", "genksc", "--data", data, "--quiet", "--out", str(out),
                         *FAST["genksc"]]) == 0
        files = json.loads((out / "metrics.json").read_text())["files"]
        assert set(files) == {"checkpoint", *pictures}


def test_a_failing_picture_keeps_the_metrics(tmp_path, monkeypatch):
    def broken_plot(*args):
        raise RuntimeError("the plotting broke")

    monkeypatch.setattr(genksc_module, "cli_outputs", broken_plot)
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="the plotting broke"):
        cli_main(["fit", "genksc", "--data", "blobs", "--quiet", "--out", str(out),
                  *FAST["genksc"]])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train"]["nmi"] >= 0 and (out / "model.pt").exists()


@pytest.mark.parametrize("argv, message", [
    (["fit", "kmeans", "--data", "blobs", "--k", "1"], "--k must be >= 2 (clusters), got 1"),
    (["fit", "genksc", "--data", "blobs", "--k", "0"], "--k must be >= 2 (clusters), got 0"),
    (["fit", "genksc", "--data", "blobs", "--s", "0"], "n_components (s) must be an integer"),
    (["fit", "genksc", "--data", "blobs", "--feature-dim", "0"],
     "feature_dim must be an integer >= 1, got 0"),
    (["fit", "genksc", "--data", "blobs", "--epochs", "-1"], "epochs must be an integer >= 1, got -1"),
    (["fit", "ae-kmeans", "--data", "blobs", "--n-init", "0", *NET],
     "AEKMeans: n_init must be an integer >= 1, got 0"),
    (["fit", "kmeans", "--data", "blobs", "--n-init", "0"], "n_init"),
    (["fit", "rsm", "--data", "blobs", "--checkpoint-every", "0"],
     "RSM: checkpoint_every must be an integer >= 1, got 0"),
    (["fit", "kmeans", "--data", "mnist:val"], "split suffix 'val'"),
    (["fit", "kmeans", "--data", "cifar10"], "unknown data set 'cifar10'"),
    (["fit", "kmeans", "--data", "digits", "--classes", "0,x"], "expected integer labels"),
    (["fit", "kmeans", "--data", "digits", "--classes", "0,11"], "has no label(s) [11]"),
    (["fit", "kmeans", "--data", "digits:train", "--test"], "names a split already"),
    (["reproduce", "acedec", "--threads", "0"], "--threads must be >= 1"),
    (["reproduce", "nosuchtable"], "invalid choice: 'nosuchtable'"),
    (["reproduce", "spectral", "--rows", "nosuchrow"], "has no row(s) ['nosuchrow']"),
    (["bench", "--repeats", "0"], "--repeats must be >= 1"),
    (["bench", "--n", "0"], "--n must be >= 1"),
])
def test_bad_values_get_a_one_line_error(argv, message, tmp_path, capsys):
    if argv[0] == "fit":
        argv = [*argv, "--quiet", "--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as exit_info:
        cli_main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_data_split_suffix_and_class_subset(tmp_path):
    out = tmp_path / "run"
    assert cli_main(["fit", "kmeans", "--data", "digits:train", "--classes", "3,5,8",
                     "--quiet", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data"] == "digits[3,5,8]:train"
    assert metrics["params"]["n_clusters"] == 3  # --k defaults to the classes kept


def test_info_reports_version_build_and_devices(capsys):
    import torch

    import pydeepclust

    assert cli_main(["info"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["pydeepclust"] == pydeepclust.__version__
    assert info["torch"] == torch.__version__
    assert info["build"]["available"] == pydeepclust.ops.extension_available()
    if info["build"]["available"]:
        assert {"cuda", "cuda_arch_list", "torch_version"} <= set(info["build"])
    assert info["backend"] == pydeepclust.ops.backend()
    assert info["devices"]["cpu"]["torch_threads"] == torch.get_num_threads()
    assert len(info["devices"]["cuda"]) == (torch.cuda.device_count()
                                            if torch.cuda.is_available() else 0)


def test_info_names_each_cuda_device(capsys, monkeypatch):
    from types import SimpleNamespace

    import torch

    gpus = [SimpleNamespace(name="Card A", major=8, minor=0, total_memory=80 * 2**30),
            SimpleNamespace(name="Card B", major=9, minor=0, total_memory=141 * 2**30)]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(gpus))
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: gpus[index])
    assert cli_main(["info"]) == 0
    cuda = json.loads(capsys.readouterr().out)["devices"]["cuda"]
    assert cuda == [{"index": 0, "name": "Card A", "capability": "8.0", "memory_gib": 80.0},
                    {"index": 1, "name": "Card B", "capability": "9.0", "memory_gib": 141.0}]
