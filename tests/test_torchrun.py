"""The command line under torchrun: two CPU ranks (gloo) give the labels of one process, and a
rank killed mid-training restarts the group, which resumes from the last checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import torch

from pydeepclust.models import GenKSC, RSM

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYDEEPCLUST_CHECK_SYNC": "1"}


def _fit_command(out, *extra, ranks: int | None = None, max_restarts: int = 0) -> list[str]:
    launcher = [] if ranks is None else [
        "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}",
        f"--max-restarts={max_restarts}", "--monitor-interval=0.1"]
    return [sys.executable, *launcher, "-m", "pydeepclust", "fit", *extra, "--out", str(out),
            "--quiet", "--no-pictures"]


def _run(command, timeout=300):
    done = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


RSM_ARGS = ["rsm", "--data", "digits012", "--epochs", "4", "--batch-size", "128", "--seed", "0"]


def test_torchrun_two_ranks_match_one_process(tmp_path):
    _run(_fit_command(tmp_path / "one", *RSM_ARGS))
    done = _run(_fit_command(tmp_path / "two", *RSM_ARGS, ranks=2))
    assert "2 ranks (gloo)" in done.stdout
    one, two = (RSM.load(tmp_path / run / "model.pt") for run in ("one", "two"))
    np.testing.assert_array_equal(two.labels_, one.labels_)
    metrics = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert metrics["train"]["nmi"] == json.loads(
        (tmp_path / "one" / "metrics.json").read_text())["train"]["nmi"]


def test_torchrun_batch_not_divisible_fails_on_every_rank(tmp_path):
    command = _fit_command(tmp_path, "rsm", "--data", "digits012", "--epochs", "1",
                           "--batch-size", "127", ranks=2)
    done = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "batch_size=127 is the global batch, split over the 2 ranks" in done.stderr


def _workers(parent: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(parent)], capture_output=True, text=True).stdout
    return [int(pid) for pid in out.split()]


GENKSC_ARGS = ["genksc", "--data", "digits012", "--epochs", "60", "--seed", "0",
               "--checkpoint-every", "2", "--resume"]


def test_torchrun_restarts_a_killed_rank_and_resumes(tmp_path):
    """SIGKILL one rank once the first checkpoint is written: torchrun (--max-restarts=1)
    restarts both ranks, which resume from the checkpoint (--resume) and end with the labels
    of an uninterrupted two-rank run."""
    _run(_fit_command(tmp_path / "whole", *GENKSC_ARGS, ranks=2))
    out = tmp_path / "killed"
    agent = subprocess.Popen(_fit_command(out, *GENKSC_ARGS, ranks=2, max_restarts=1), env=ENV,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not (out / "model.pt").exists() and agent.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)
    workers = _workers(agent.pid)
    assert len(workers) == 2, "the run ended before a rank could be killed"
    epoch_at_kill = torch.load(out / "model.pt", weights_only=True)["training"]["epoch"]
    os.kill(workers[-1], signal.SIGKILL)
    stdout, stderr = agent.communicate(timeout=300)
    errors = [line for line in stderr.splitlines() if "Error" in line or "error" in line]
    assert agent.returncode == 0, "\n".join(errors[-20:]) + stdout[-2000:]
    assert epoch_at_kill < 60
    whole, resumed = (GenKSC.load(tmp_path / run / "model.pt") for run in ("whole", "killed"))
    np.testing.assert_array_equal(resumed.labels_, whole.labels_)
    for got, want in zip(resumed.encoder_.parameters(), whole.encoder_.parameters()):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
