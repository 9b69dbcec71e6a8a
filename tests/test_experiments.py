"""The experiment runner: spec validation before any training, resume, shared pretraining,
provenance of each row, and the report rendered from a fixture file."""

import json
import os

import pytest

from pydeepclust import experiments
from pydeepclust.cli import main as cli_main
from pydeepclust.experiments import TABLES, Row, Table

FIXTURES = os.path.join(os.path.dirname(__file__), "data")
TINY_AE = {"latent_dim": 2, "hidden": (8,), "epochs": 1}
# Rows that fit in well under a second: k-means and KSC on the synthetic sets, and an
# autoencoder pair sharing one pretrained network.
TINY = Table("tiny", "a tiny table", seeds=(0, 1), rows=(
    Row("kmeans/blobs", "kmeans", "blobs", {"n_init": 2}, paper=0.9),
    Row("ksc/blobs", "ksc", "blobs:train", test_data="blobs:test", paper=1.0, paper_test=1.0),
    Row("ae-kmeans/blobs", "ae-kmeans", "blobs", {"n_init": 1}, pretrain=TINY_AE),
    Row("dcn1/blobs", "dcn1", "blobs", {"epochs": 1}, pretrain=TINY_AE),
))


def run(table=TINY, **kwargs):
    kwargs.setdefault("autoencoder_dir", None)
    return experiments.run_table(table, **kwargs)


def test_rows_record_results_settings_and_provenance(tmp_path):
    out = str(tmp_path / "results.jsonl")
    written = run(rows=TINY.rows[:2], seeds=[0], out=out)
    assert experiments.read_rows(out) == json.loads(json.dumps(written))
    kmeans, ksc = written
    assert kmeans["row"] == "kmeans/blobs" and kmeans["seed"] == 0 and kmeans["table"] == "tiny"
    assert kmeans["params"]["n_clusters"] == 3  # from the data's classes
    assert kmeans["params"]["n_init"] == 2 and kmeans["params"]["random_state"] == 0
    assert kmeans["spec"] == {"method": "kmeans", "data": "blobs", "settings": {"n_init": 2}}
    for key in ("version", "commit", "torch", "device", "threads", "wall_s", "finished"):
        assert key in kmeans
    assert kmeans["threads"] >= 1 and kmeans["device"].startswith("cpu")
    assert ksc["data"] == "blobs:train" and ksc["test_data"] == "blobs:test"
    assert set(ksc["test"]) == {"nmi", "ari", "acc"} and ksc["test"]["nmi"] > 0.9


def test_resume_runs_only_what_the_file_lacks(tmp_path, monkeypatch):
    out = str(tmp_path / "results.jsonl")
    run(rows=TINY.rows[:2], seeds=[0], out=out)
    fits = []
    original = experiments._estimator

    def counting(row, seed, extra=None):
        if extra is not None:
            fits.append((row.name, seed))
        return original(row, seed, extra)

    monkeypatch.setattr(experiments, "_estimator", counting)
    run(rows=TINY.rows[:2], seeds=[0, 1], out=out)
    assert fits == [("kmeans/blobs", 1), ("ksc/blobs", 1)]
    fits.clear()
    run(rows=TINY.rows[:2], seeds=[0, 1], out=out)
    assert fits == []  # all done
    # a run killed while writing leaves a cut line: it is skipped, and the next row written
    # after it starts on a line of its own
    with open(out, "a") as f:
        f.write('{"table": "tiny", "row": "kmeans/blo')
    with pytest.warns(UserWarning, match="line 5 is not a complete JSON row"):
        assert len(experiments.read_rows(out)) == 4
    with pytest.warns(UserWarning, match="line 5"):
        run(rows=TINY.rows[:1], seeds=[2], out=out)
    with pytest.warns(UserWarning, match="line 5"):
        rows = experiments.read_rows(out)
    assert [(r["row"], r["seed"]) for r in rows][-1] == ("kmeans/blobs", 2)
    with pytest.warns(UserWarning, match="line 5"):
        run(rows=TINY.rows[:1], seeds=[2, 3], out=out)
    assert fits == [("kmeans/blobs", 2), ("kmeans/blobs", 3)]  # 2 ran once


def test_changed_settings_are_not_taken_for_done(tmp_path, monkeypatch):
    out = str(tmp_path / "results.jsonl")
    run(rows=TINY.rows[:1], seeds=[0], out=out)
    changed = Row("kmeans/blobs", "kmeans", "blobs", {"n_init": 3}, paper=0.9)
    assert changed.spec_id() != TINY.rows[0].spec_id()
    assert len(run(Table("tiny", "t", (changed,)), seeds=[0], out=out)) == 1
    # the report shows the current spec's rows and counts the others as stale
    text = experiments.report(Table("tiny", "t", (changed,)), out)
    assert "| kmeans/blobs | blobs | 0 |" in text and "1 row(s) of the file ran with other" in text


def test_autoencoder_rows_share_one_pretrained_network(tmp_path, monkeypatch):
    from pydeepclust.models.autoencoder import AutoencoderClusterer

    calls = []
    original = AutoencoderClusterer._pretrain

    def counting(self, X):  # every pretraining, whichever estimator runs it
        calls.append(self.random_state)
        return original(self, X)

    monkeypatch.setattr(AutoencoderClusterer, "_pretrain", counting)
    cache = tmp_path / "aes"
    out = str(tmp_path / "results.jsonl")
    first = run(rows=TINY.rows[2:], seeds=[0], out=out, autoencoder_dir=str(cache))
    assert calls == [0] and len(os.listdir(cache)) == 1  # two rows, one network
    assert [r["pretrain_cached"] for r in first] == [False, True]  # the second row reuses it
    assert first[0]["wall_s"] == pytest.approx(first[0]["fit_s"] + first[0]["pretrain_s"], abs=0.11)
    assert first[1]["wall_s"] == first[1]["fit_s"]
    # a new process (fresh memo) reads the network from the folder
    later = run(Table("t2", "t", TINY.rows[2:]), seeds=[0], out=out, autoencoder_dir=str(cache))
    assert calls == [0] and [r["pretrain_cached"] for r in later] == [True, True]
    assert [r["train"] for r in later] == [r["train"] for r in first]  # the same network


@pytest.mark.parametrize("row, message", [
    (Row("r", "kmeanz", "blobs"), "unknown method 'kmeanz'"),
    (Row("r", "kmeans", "blobz"), "unknown data set 'blobz'"),
    (Row("r", "kmeans", "mnist:validation"), "split suffix 'validation'"),
    (Row("r", "ksc", "blobs", test_data="circlez"), "unknown data set 'circlez'"),
    (Row("r", "kmeans", "blobs", {"n_inits": 3}), r"KMeansBaseline has no parameter\(s\) \['n_inits'\]"),
    (Row("r", "kmeans", "blobs", pretrain=TINY_AE), "pretrain applies to autoencoder methods"),
    (Row("r", "acedec", "blobs", pretrain={"epoch": 3}), r"unknown pretrain setting\(s\) \['epoch'\]"),
    (Row("r", "dcn1", "blobs", {"lam": 5.0}), r"may not set \['lam'\]"),
    (Row("r", "kmeans", "blobs", {"random_state": 5}), r"may not set \['random_state'\]"),
])
def test_a_bad_spec_fails_before_any_training(row, message, tmp_path, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("trained before validating")

    monkeypatch.setattr(experiments, "_Data", no_training)
    table = Table("bad", "bad", (TINY.rows[0], row))
    with pytest.raises(ValueError, match=f"table 'bad', row 'r': .*{message}"):
        run(table, out=str(tmp_path / "r.jsonl"))
    assert not (tmp_path / "r.jsonl").exists()


@pytest.mark.parametrize("name", sorted(TABLES))
def test_every_shipped_table_is_valid(name):
    table = TABLES[name]
    experiments.validate(table)
    assert len({row.name for row in table.rows}) == len(table.rows)  # row names are ids


def test_select_rows_by_name_or_method_prefix():
    table = TABLES["acedec-mnist"]
    assert [r.name for r in experiments.select_rows(table, ["dcn1"])] == [
        "dcn1/mnist", "dcn1/mnist-test"]
    assert [r.name for r in experiments.select_rows(table, ["dcn10/mnist", "acedec+aug"])] == [
        "dcn10/mnist", "acedec+aug/mnist"]
    assert {r.name for r in experiments.select_rows(table, ["acedec"])} == {
        "acedec/mnist", "acedec/mnist-test", "acedec/mnist-test-pixels"}
    assert experiments.select_rows(table, None) == list(table.rows)


def test_report_from_a_fixture_file(tmp_path):
    png = tmp_path / "chart.png"
    text = experiments.report(TINY, os.path.join(FIXTURES, "tiny_results.jsonl"), png=str(png))
    lines = text.splitlines()
    # mean +- sd (sample sd) over the two seeds, beside the paper and the difference
    assert "| kmeans/blobs | blobs | 0,1 | 0.800 ± 0.141 | 0.900 | -0.100 |" in text
    ksc = next(line for line in lines if line.startswith("| ksc/blobs"))
    assert "| 1.000 ± 0.000 | 1.000 | +0.000 | 0.950 ± 0.000 | 1.000 | -0.050 | 3 |" in ksc
    assert "| dcn1/blobs | blobs | — | — | — | — |" in text  # not run yet
    assert png.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"


def test_cli_reproduce_runs_lists_and_reports(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(TABLES, "tiny", TINY)
    out = str(tmp_path / "tiny.jsonl")
    assert cli_main(["reproduce", "tiny", "--rows", "kmeans", "--seeds", "0", "--out", out,
                     "--quiet"]) == 0
    assert [r["row"] for r in experiments.read_rows(out)] == ["kmeans/blobs"]
    assert cli_main(["reproduce", "tiny", "--report", "--out", out]) == 0
    assert "| kmeans/blobs | blobs | 0 |" in capsys.readouterr().out
    assert (tmp_path / "tiny.png").stat().st_size > 1000  # the chart beside the results
    assert cli_main(["reproduce", "--list"]) == 0
    listing = capsys.readouterr().out
    assert "acedec/mnist-test" in listing and "mnist012" in listing


def test_a_failing_run_is_reported_and_the_others_still_run(tmp_path, monkeypatch):
    out = str(tmp_path / "r.jsonl")
    original = experiments._estimator

    def broken_ksc(row, seed, extra=None):
        if extra is not None and row.method == "ksc":
            raise ValueError("KSC broke")
        return original(row, seed, extra)

    monkeypatch.setattr(experiments, "_estimator", broken_ksc)
    with pytest.warns(UserWarning, match="ksc/blobs seed 0 failed"), \
            pytest.raises(RuntimeError, match=r"1 run\(s\) of table 'tiny' failed:\n  ksc/blobs"):
        run(rows=TINY.rows[:2], seeds=[0], out=out)
    assert [r["row"] for r in experiments.read_rows(out)] == ["kmeans/blobs"]


def test_failing_pictures_keep_the_result(tmp_path, monkeypatch):
    def broken(*args):
        raise RuntimeError("the plotting broke")

    monkeypatch.setattr(experiments, "_save_pictures", broken)
    out = str(tmp_path / "r.jsonl")
    with pytest.warns(UserWarning, match="pictures failed: the plotting broke"):
        run(rows=TINY.rows[:1], seeds=[0], out=out, pictures=str(tmp_path / "pics"))
    assert len(experiments.read_rows(out)) == 1


def test_provenance_is_taken_once_before_training(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(experiments, "provenance", lambda: calls.append(1) or {"commit": "abc"})
    written = run(rows=TINY.rows[:2], seeds=[0, 1], out=str(tmp_path / "r.jsonl"))
    assert calls == [1] and {r["commit"] for r in written} == {"abc"}


def test_the_report_counts_a_seed_once_and_needs_its_file(tmp_path):
    fixture = os.path.join(FIXTURES, "tiny_results.jsonl")
    doubled = tmp_path / "doubled.jsonl"
    lines = open(fixture).read().splitlines()
    doubled.write_text("\n".join(lines + lines[:1]) + "\n")  # seed 0 of kmeans twice
    assert "| kmeans/blobs | blobs | 0,1 | 0.800 ± 0.141 |" in experiments.report(TINY, str(doubled))
    with pytest.raises(FileNotFoundError, match="no results file"):
        experiments.report(TINY, str(tmp_path / "missing.jsonl"))


def test_resolved_defaults_are_recorded(tmp_path):
    row = Row("rsm/blobs", "rsm", "blobs", {"epochs": 1})
    (result,) = run(Table("t", "t", (row,)), seeds=[0], out=None)
    assert result["params"]["lr"] is None and result["resolved"]["lr"] == pytest.approx(3e-3)
    assert result["resolved"]["batch_size"] == 1500


def test_pretraining_is_kept_resumable_and_unchanged(tmp_path, noisy_blobs, monkeypatch):
    """With an autoencoder folder the runner pretrains through AEKMeans with checkpoints: the
    network equals pretrain_autoencoder's, and a pretraining cut off mid-way continues from
    its checkpoint (no partial file is left once it is done)."""
    import torch

    from pydeepclust.models import AEKMeans, pretrain_autoencoder

    X = noisy_blobs[0]
    settings = {"latent_dim": 2, "hidden": (8,), "epochs": 12, "batch_size": 60}
    row = Row("ae-kmeans/blobs", "ae-kmeans", "blobs", pretrain=settings)
    expected = pretrain_autoencoder(X, random_state=0, **settings).state_dict()

    calls, check = [0], AEKMeans._check_loss

    def killed_after_nine_epochs(self, *args, **kwargs):  # 4 steps an epoch
        calls[0] += 1
        if calls[0] > 9 * 4 + 2:
            raise KeyboardInterrupt
        return check(self, *args, **kwargs)

    monkeypatch.setattr(AEKMeans, "_check_loss", killed_after_nine_epochs)
    with pytest.raises(KeyboardInterrupt):
        experiments._pretrained(row, X, 0, str(tmp_path), None, {})
    partial = [f for f in os.listdir(tmp_path) if f.endswith(".partial")]
    assert len(partial) == 1  # the checkpoint after epoch 5
    monkeypatch.setattr(AEKMeans, "_check_loss", check)
    calls[0] = 0

    def counted(self, *args, **kwargs):
        calls[0] += 1
        return check(self, *args, **kwargs)

    monkeypatch.setattr(AEKMeans, "_check_loss", counted)
    ae, _, cached = experiments._pretrained(row, X, 0, str(tmp_path), None, {})
    assert not cached and calls[0] == (12 - 5) * 4  # resumed after epoch 5
    assert not any(f.endswith(".partial") for f in os.listdir(tmp_path))
    for key, value in ae.state_dict().items():
        assert torch.equal(value, expected[key]), key


def test_pretraining_checkpoint_settings_are_checked_first(tmp_path, noisy_blobs):
    from pydeepclust.models import pretrain_autoencoder

    X = noisy_blobs[0]
    with pytest.raises(ValueError, match="checkpoint_path .* does not exist"):
        pretrain_autoencoder(X, epochs=1, checkpoint_path=str(tmp_path / "no" / "ae.pt"))
    with pytest.raises(ValueError, match="checkpoint_every must be an integer >= 1"):
        pretrain_autoencoder(X, epochs=1, checkpoint_path=str(tmp_path / "ae.pt"),
                             checkpoint_every=0)
