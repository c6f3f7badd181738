"""camp.train, camp.checkpoint, camp.metrics and camp.models.load_encoder."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import DatasetDict

from camp import checkpoint, data, loop, metrics, models, train

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(emotions):
    """96 training and 48 validation texts: enough to see a loop work in a few seconds."""
    return DatasetDict({"train": emotions["train"].select(range(96)),
                        "validation": emotions["validation"].select(range(48)),
                        "test": emotions["test"].select(range(48))})


def cli(*args):
    return [sys.executable, "-m", "camp", "train-classifier", "--no-progress", *args]


# ---- config and sampler ----

@pytest.mark.parametrize("bad", [{"lr": 0}, {"batch_size": 0}, {"warmup_ratio": 1.0}, {"mixed_precision": "fp8"},
                                 {"max_steps": 0}])
def test_bad_config_is_refused_before_training(bad):
    with pytest.raises(ValueError, match=f"invalid TrainConfig values: {next(iter(bad))}"):
        train.TrainConfig(**bad)


def test_quick_preset_is_shorter_and_overridable():
    quick = train.TrainConfig.quick(seed=3)
    assert quick.max_steps == 190 and train.TrainConfig().max_steps is None and quick.seed == 3


def test_length_grouped_sampler_covers_everything_once_and_pads_less():
    lengths = np.random.default_rng(0).integers(3, 80, size=1000).tolist()
    grouped = train.LengthGroupedSampler(lengths, 32, seed=1)
    plain = train.LengthGroupedSampler(lengths, 32, seed=1, grouped=False)
    batches = grouped.batches()
    assert sorted(i for b in batches for i in b) == list(range(1000))

    def padded(bs):
        return sum(max(lengths[i] for i in b) * len(b) for b in bs)

    assert padded(batches) < 0.7 * padded(plain.batches())  # grouping removes most of the padding
    assert grouped.batches() == batches  # same (seed, epoch): same order, which exact resume relies on
    grouped.set_epoch(1)
    assert grouped.batches() != batches


# ---- metrics and inputs ----

def test_classification_metrics_on_a_hand_case():
    # true 0 0 1 1, predicted 0 1 1 1: class 0 P=1 R=.5 F1=2/3; class 1 P=2/3 R=1 F1=.8; macro = 0.7333
    m = metrics.classification_metrics([0, 0, 1, 1], [0, 1, 1, 1], 2, ["a", "b"])
    assert m["accuracy"] == 0.75 and abs(m["macro_f1"] - (2 / 3 + 0.8) / 2) < 1e-12
    assert m["confusion_matrix"] == [[1, 1], [0, 2]] and m["per_class"]["b"]["recall"] == 1.0


@pytest.mark.parametrize(("texts", "error", "message"), [
    ("just one string", TypeError, "single string"),
    ([], ValueError, "empty list"),
    (["fine", None], TypeError, "text 1 is None"),
    (["fine", 42], TypeError, "text 1 is a int"),
    (["fine", "   "], ValueError, "text 1 is empty"),
])
def test_bad_texts_get_clear_errors(texts, error, message):
    with pytest.raises(error, match=message):
        metrics.validate_texts(texts)


def test_label_outside_the_label_set_is_refused(tiny):
    model, tok = models.load_encoder("auto")
    bad = tiny["train"].to_dict()
    bad["label"][5] = 9
    from datasets import Dataset

    broken = DatasetDict({**tiny, "train": Dataset.from_dict(bad)})
    with pytest.raises(ValueError, match="labels at rows \\[5\\] are outside 0..5"):
        train.train_classifier(model, tok, broken, train.TrainConfig(max_steps=1, progress=False))


def test_num_labels_that_do_not_match_a_saved_classifier_are_refused(tmp_path):
    model, tok = models.load_encoder("auto", num_labels=6)
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="classifier with 6 labels, but num_labels=4"):
        models.load_encoder(str(tmp_path), num_labels=4)
    reloaded, _ = models.load_encoder(str(tmp_path), num_labels=6)
    assert reloaded.config.id2label[5] == "surprise"


# ---- the loop ----

def test_training_changes_weights_and_logs_finite_metrics(tiny):
    model, tok = models.load_encoder("auto")
    before = model.classifier.weight.detach().clone()
    cfg = train.TrainConfig(max_steps=4, eval_every=2, batch_size=16, progress=False, patience=None)
    model, history = train.train_classifier(model, tok, tiny, cfg)
    assert not torch.equal(before, model.classifier.weight)
    assert [h["step"] for h in history] == [2, 4]
    assert all(np.isfinite(h["loss/train"]) and 0 <= h["eval/macro_f1"] <= 1 for h in history)
    labels, probs = train.predict(model, tok, ["my dog died this morning", "we won the cup!!"])
    assert probs.shape == (2, 6) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert set(labels) <= set(data.EMOTIONS)


def test_checkpoint_round_trip_restores_everything(tiny, tmp_path):
    model, tok = models.load_encoder("auto")
    cfg = train.TrainConfig(max_steps=2, eval_every=2, batch_size=16, progress=False,
                            checkpoint_dir=str(tmp_path), checkpoint_every=2)
    model, _ = train.train_classifier(model, tok, tiny, cfg)
    tensors, meta = checkpoint.load_checkpoint(tmp_path / "checkpoint.safetensors")
    assert meta["config"]["max_steps"] == 2 and meta["progress"]["step"] == 2
    assert "scheduler" in meta and any(k.startswith("optim.") for k in tensors)
    assert torch.equal(tensors["model.classifier.weight"], model.classifier.weight.detach())


def test_truncated_checkpoint_is_refused(tiny, tmp_path):
    model, tok = models.load_encoder("auto")
    cfg = train.TrainConfig(max_steps=1, eval_every=1, batch_size=16, progress=False,
                            checkpoint_dir=str(tmp_path), checkpoint_every=1)
    train.train_classifier(model, tok, tiny, cfg)
    path = tmp_path / "checkpoint.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(checkpoint.CheckpointError, match="truncated or damaged"):
        train.train_classifier(model, tok, tiny, cfg, resume=True)


def test_resume_without_a_checkpoint_says_so(tiny, tmp_path):
    model, tok = models.load_encoder("auto")
    cfg = train.TrainConfig(max_steps=1, progress=False, checkpoint_dir=str(tmp_path))
    with pytest.raises(checkpoint.CheckpointError, match="no checkpoint at"):
        train.train_classifier(model, tok, tiny, cfg, resume=True)


# ---- kill -9 and resume, as a learner whose Colab disconnects would ----

def _metrics(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


@pytest.mark.slow
def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path, kill_after_checkpoint):
    args = ["--train-limit", "256", "--batch-size", "8", "--max-steps", "16", "--eval-every", "8",
            "--checkpoint-every", "2", "--checkpoint-minutes", "0", "--eval-limit", "64", "--lr", "2e-4", "--seed", "7"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run(cli("--out", str(straight), *args), check=True, capture_output=True, timeout=600)

    step = kill_after_checkpoint(cli("--out", str(killed), *args), killed / "checkpoint.safetensors", min_step=8)
    assert 8 <= step < 16 and not (killed / "metrics.json").exists()

    subprocess.run(cli("--out", str(killed), *args, "--resume"), check=True, capture_output=True, timeout=600)
    a, b = _metrics(straight), _metrics(killed)
    for split in ("validation", "test"):
        for key in ("accuracy", "macro_f1"):
            assert abs(a[split][key] - b[split][key]) < 1e-4, (split, key, a[split], b[split])
    assert [h["eval/macro_f1"] for h in a["history"]][-1] == pytest.approx(b["history"][-1]["eval/macro_f1"],
                                                                            abs=1e-4)


# ---- two processes through accelerate launch (gloo on CPU) ----

@pytest.mark.slow
def test_accelerate_launch_two_cpu_processes_trains_as_well(tmp_path):
    # One process accumulating 2 batches of 8 per step and two processes with 8 each see the same 16 examples
    # per optimizer step: the same training, split differently. Small batches keep it under a minute a run.
    common = ["--train-limit", "512", "--batch-size", "8", "--lr", "5e-4", "--eval-every", "16", "--seed", "1",
              "--max-steps", "32", "--eval-limit", "160"]
    one, two = tmp_path / "one", tmp_path / "two"
    subprocess.run(cli("--out", str(one), "--grad-accum", "2", *common), check=True, capture_output=True,
                   timeout=900)
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "--main_process_port", "0", "-m", "camp", "train-classifier", "--no-progress", "--out", str(two),
              *common]
    out = subprocess.run(launch, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    single, double = _metrics(one), _metrics(two)
    assert single["processes"] == 1 and double["processes"] == 2
    # Both learn past the majority class (macro-F1 0.07 on these 160 texts), to the same place.
    assert single["validation"]["macro_f1"] > 0.12 and double["validation"]["macro_f1"] > 0.12
    assert abs(single["validation"]["accuracy"] - double["validation"]["accuracy"]) < 0.05
    assert [h["step"] for h in single["history"]] == [h["step"] for h in double["history"]] == [16, 32]


def test_best_weights_get_their_own_file_written_only_when_validation_improves(tiny, tmp_path, monkeypatch):
    written = []
    real_write = loop.atomic_write_bytes
    monkeypatch.setattr(loop, "atomic_write_bytes", lambda path, blob: written.append(path) or real_write(path, blob))
    model, tok = models.load_encoder("auto")
    cfg = train.TrainConfig(max_steps=6, eval_every=1, batch_size=16, lr=3e-4, progress=False, patience=None,
                            checkpoint_dir=str(tmp_path), checkpoint_every=1, checkpoint_minutes=0)
    model, history = train.train_classifier(model, tok, tiny, cfg)
    f1 = [h["eval/macro_f1"] for h in history]
    improved = [h["step"] for i, h in enumerate(history) if f1[i] > max(f1[:i], default=-1.0)]
    assert [p.name for p in written] == [f"best-step{s:06d}.safetensors" for s in improved]
    on_disk = sorted(p.name for p in tmp_path.iterdir())
    assert on_disk == [f"best-step{improved[-1]:06d}.safetensors", "checkpoint.safetensors"]
    tensors, meta = checkpoint.load_checkpoint(tmp_path / "checkpoint.safetensors")
    assert not [k for k in tensors if k.startswith("extra.")]  # the checkpoint no longer carries a second model
    from safetensors.torch import load_file

    best = load_file(tmp_path / on_disk[0])
    assert torch.equal(best["classifier.weight"], model.classifier.weight.detach())  # returned: the best weights
    # Sizes the README quotes: fp32 weights alone in the best file; weights and Adam's two moments in a checkpoint.
    megabytes = {name: (tmp_path / name).stat().st_size / 1e6 for name in on_disk}
    params = sum(p.numel() for p in model.parameters())
    assert megabytes[on_disk[0]] == pytest.approx(4 * params / 1e6, rel=0.01)
    assert megabytes["checkpoint.safetensors"] == pytest.approx(3 * 4 * params / 1e6, rel=0.01)

    (tmp_path / on_disk[0]).unlink()
    with pytest.raises(checkpoint.CheckpointError, match=f"{on_disk[0]}, which is missing"):
        train.train_classifier(model, tok, tiny, cfg, resume=True)


def test_classification_metrics_agree_with_scikit_learn():
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    rng = np.random.default_rng(4)
    for k in (2, 6):
        true, pred = rng.integers(0, k, 200), rng.integers(0, k - 1, 200)  # the last class is never predicted
        m = metrics.classification_metrics(true, pred, k)
        p, r, f, s = precision_recall_fscore_support(true, pred, labels=list(range(k)), zero_division=0)
        assert m["accuracy"] == pytest.approx(accuracy_score(true, pred))
        assert m["macro_f1"] == pytest.approx(f1_score(true, pred, labels=list(range(k)), average="macro",
                                                       zero_division=0))
        assert m["confusion_matrix"] == confusion_matrix(true, pred, labels=list(range(k))).tolist()
        for i, c in enumerate(m["per_class"].values()):
            assert (c["precision"], c["recall"], c["f1"], c["support"]) == pytest.approx((p[i], r[i], f[i], s[i]))


def test_labels_outside_the_classes_are_refused_by_the_metrics():
    with pytest.raises(ValueError, match=r"labels \[6\] are outside 0..5"):
        metrics.classification_metrics([0, 1, 2], [0, 6, 2], 6)
    with pytest.raises(ValueError, match="equal-length"):
        metrics.classification_metrics([0, 1], [0], 6)
