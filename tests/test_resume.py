"""Resumable, kill-safe training: a fit stopped mid-training (by an exception at a chosen step,
or a real SIGKILL of the command line) and resumed with ``fit(X, resume=True)`` / ``--resume``
ends with the labels and weights of an uninterrupted fit of the same seed."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import pydeepclust.models.rsm as rsm_module
from pydeepclust.cli import main as cli_main
from pydeepclust.models import DCN, RSM, ACeDeC, AEKMeans, GenKSC, KMeansBaseline
from pydeepclust.models.base import DeepClusterer

STEPS = 4  # steps per epoch of every model below on the 240 rows of `blobs`

MODELS = {
    "genksc": lambda **kw: GenKSC(3, hidden=(32,), feature_dim=16, epochs=6, warmup_epochs=2,
                                  batch_size=60, random_state=0, verbose=False, **kw),
    "rsm": lambda **kw: RSM(3, hidden=(32,), epochs=6, batch_size=60, n_init=2,
                            random_state=0, **kw),
    "rsm-autoencoder": lambda **kw: RSM(3, hidden=(32,), epochs=6, batch_size=60, n_init=2,
                                        affinity_on="autoencoder", latent_dim=3,
                                        autoencoder_hidden=(16,), pretrain_epochs=2,
                                        random_state=0, **kw),
    "acedec": lambda **kw: ACeDeC(3, latent_dim=4, hidden=(32,), pretrain_epochs=3, epochs=3,
                                  batch_size=60, n_init=2, final_recluster=True, random_state=0,
                                  **kw),
    "dcn": lambda **kw: DCN(3, latent_dim=4, hidden=(32,), pretrain_epochs=3, epochs=3,
                            batch_size=60, random_state=0, **kw),
    "ae-kmeans": lambda **kw: AEKMeans(3, latent_dim=4, hidden=(32,), pretrain_epochs=5,
                                       batch_size=60, n_init=2, random_state=0, **kw),
}
# Steps before the kill, and the steps the resumed fit still has to take (checkpoints every
# 2 epochs of 4 steps: the steps after the last checkpoint are lost and redone).
KILLS = {
    "genksc": [(14, 24 - 8)],                 # mid epoch 4, resumed after epoch 2
    "rsm": [(14, 24 - 8)],
    "rsm-autoencoder": [(14, 24 - 8)],        # and no pretraining again
    "acedec": [(10, 24 - 8), (14, 12)],       # mid pretraining; mid clustering epoch 1
    "dcn": [(21, 12 - 8)],                    # mid clustering epoch 3
    "ae-kmeans": [(18, 20 - 16)],             # mid pretraining epoch 5
}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def blobs(noisy_blobs):
    return noisy_blobs[0]

class Killed(Exception):
    """Stands in for SIGKILL: raised at a chosen training step."""


def count_steps(est: DeepClusterer, kill_after: int | None = None) -> list[int]:
    """Count the training steps of ``est`` (every loop checks each step's loss), raising
    :class:`Killed` at step ``kill_after + 1``."""
    calls, check = [0], est._check_loss

    def counting(*args, **kwargs):
        calls[0] += 1
        if kill_after is not None and calls[0] > kill_after:
            raise Killed
        return check(*args, **kwargs)

    est._check_loss = counting
    return calls


def assert_same_fit(a: DeepClusterer, b: DeepClusterer) -> None:
    np.testing.assert_array_equal(a.labels_, b.labels_)
    for name, module in a._modules().items():
        other = b._modules()[name].state_dict()
        for key, value in module.state_dict().items():
            assert torch.equal(value, other[key]), f"{name}.{key}"
    for key, value in a._fitted_tensors().items():
        assert torch.equal(value, b._fitted_tensors()[key]), key
    if hasattr(a, "history_"):
        assert a.history_ == b.history_


@pytest.fixture(scope="module")
def reference(blobs, tmp_path_factory):
    """Per model: uninterrupted fits with checkpoints every epoch and without."""
    folder = tmp_path_factory.mktemp("reference")
    return {name: (make(checkpoint_path=str(folder / f"{name}.pt"), checkpoint_every=1).fit(blobs),
                   make().fit(blobs)) for name, make in MODELS.items()}


@pytest.mark.parametrize("name", MODELS)
def test_checkpoints_do_not_change_the_fit(name, reference):
    assert_same_fit(*reference[name])


@pytest.mark.parametrize("name,kill_after,remaining",
                         [(n, k, r) for n, kills in KILLS.items() for k, r in kills])
def test_killed_fit_resumes_to_the_uninterrupted_result(name, kill_after, remaining, blobs,
                                                        reference, tmp_path, monkeypatch):
    path = str(tmp_path / "model.pt")
    killed = MODELS[name](checkpoint_path=path, checkpoint_every=2)
    count_steps(killed, kill_after)
    with pytest.raises(Killed):
        killed.fit(blobs)

    def no_pretraining(*args, **kwargs):
        raise AssertionError("the autoencoder was pretrained again")

    monkeypatch.setattr(rsm_module, "pretrain_autoencoder", no_pretraining)
    resumed = MODELS[name](checkpoint_path=path, checkpoint_every=1)  # any checkpoint_every
    steps = count_steps(resumed)
    resumed.fit(blobs, resume=True)
    assert steps[0] == remaining
    assert_same_fit(resumed, reference[name][0])
    assert_same_fit(type(resumed).load(path), reference[name][0])  # the final checkpoint


@pytest.mark.parametrize("name", MODELS)
def test_resuming_a_finished_fit_gives_its_result_at_once(name, blobs, reference, tmp_path):
    finished = reference[name][0].checkpoint_path
    resumed = MODELS[name](checkpoint_path=finished)
    steps = count_steps(resumed)
    resumed.fit(blobs, resume=True)
    assert steps[0] == 0
    assert_same_fit(resumed, reference[name][0])


def test_missing_checkpoint_starts_afresh(blobs, reference, tmp_path):
    est = MODELS["genksc"](checkpoint_path=str(tmp_path / "none-yet.pt"))
    assert_same_fit(est.fit(blobs, resume=True), reference["genksc"][0])


def test_resume_needs_a_checkpoint_path(blobs):
    with pytest.raises(ValueError, match="resume=True needs checkpoint_path"):
        MODELS["rsm"]().fit(blobs, resume=True)
    with pytest.raises(ValueError, match="not trained over epochs"):
        KMeansBaseline(3).fit(blobs, resume=True)


def test_resume_refuses_other_hyperparameters_or_data(blobs, reference):
    path = reference["dcn"][0].checkpoint_path
    with pytest.raises(ValueError, match=r"other hyperparameters \(epochs: 3 in the checkpoint, "
                                         r"4 now; pretrain_epochs: 3 in the checkpoint, 2 now\)"):
        MODELS["dcn"](checkpoint_path=path).set_params(epochs=4, pretrain_epochs=2).fit(
            blobs, resume=True)
    with pytest.raises(ValueError, match="other data.*n_samples: 240 in the checkpoint, 200 now"):
        MODELS["dcn"](checkpoint_path=path).fit(blobs[:200], resume=True)
    changed = blobs.copy()
    changed[5, 1] += 1
    with pytest.raises(ValueError, match="other data.*checksum"):
        MODELS["dcn"](checkpoint_path=path).fit(changed, resume=True)
    # verbose, device and the checkpoint settings may change
    MODELS["dcn"](checkpoint_path=path, checkpoint_every=5).set_params(
        verbose=True, device="cpu").fit(blobs, resume=True)


def test_resume_refuses_a_file_without_training_state(blobs, reference, tmp_path):
    saved = str(tmp_path / "saved.pt")
    reference["genksc"][1].save(saved)
    with pytest.raises(ValueError, match="holds no training state"):
        MODELS["genksc"](checkpoint_path=saved).fit(blobs, resume=True)
    with pytest.raises(ValueError, match="not a RSM checkpoint"):
        MODELS["rsm"](checkpoint_path=saved).fit(blobs, resume=True)


def test_load_of_a_pretraining_checkpoint_says_what_it_is(blobs, tmp_path):
    path = str(tmp_path / "model.pt")
    est = MODELS["acedec"](checkpoint_path=path, checkpoint_every=1)
    count_steps(est, kill_after=6)
    with pytest.raises(Killed):
        est.fit(blobs)
    with pytest.raises(ValueError, match="fit in progress .*'pretraining', 1 epoch"):
        ACeDeC.load(path)


def test_cli_run_killed_by_sigkill_resumes_to_the_uninterrupted_run(tmp_path):
    """A real ``python -m pydeepclust fit`` killed with SIGKILL mid-training, then ``--resume``:
    the labels and weights of an uninterrupted run (both in this process, one thread each)."""
    epochs = 40
    args = ["fit", "genksc", "--data", "digits012", "--epochs", str(epochs), "--warmup", "5",
            "--feature-dim", "32", "--checkpoint-every", "1", "--quiet", "--no-pictures"]
    killed_dir = tmp_path / "killed"
    checkpoint = killed_dir / "model.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "pydeepclust", *args, "--out", str(killed_dir)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    done, deadline = 0, time.monotonic() + 240
    try:
        while done < 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
            if checkpoint.exists():
                done = torch.load(checkpoint, weights_only=True)["training"]["epoch"]
        assert proc.poll() is None, f"the run ended before the kill: {proc.stderr.read()!r}"
        assert done < epochs
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert cli_main([*args, "--out", str(killed_dir), "--resume"]) == 0
    assert cli_main([*args, "--out", str(tmp_path / "whole")]) == 0
    assert_same_fit(GenKSC.load(checkpoint), GenKSC.load(tmp_path / "whole" / "model.pt"))


def test_cli_resume_of_a_model_without_epochs_is_an_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli_main(["fit", "kmeans", "--data", "blobs", "--out", str(tmp_path), "--resume",
                  "--no-pictures", "--quiet"])
    assert "not trained over epochs" in capsys.readouterr().err
