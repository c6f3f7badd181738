import os
import random
import time

import numpy as np
import pytest
import torch

from camp import utils


def test_get_device_auto_falls_back_to_cpu_without_gpu():
    dev = utils.get_device("auto")
    # On CI (no GPU, no MPS) auto must be the CPU; on a GPU machine it must be that GPU.
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert dev.type == expected


@pytest.mark.parametrize("bad", ["gpu", "tpu", "", 3, None])
def test_get_device_rejects_unknown_names(bad):
    with pytest.raises(ValueError, match="device must be one of"):
        utils.get_device(bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_get_device_cuda_without_gpu_says_what_to_do():
    with pytest.raises(ValueError, match="get_device\\('auto'\\)"):
        utils.get_device("cuda")


def test_set_seed_repeats_every_generator():
    def draw():
        return random.random(), np.random.rand(), torch.rand(1).item()

    utils.set_seed(123)
    first = draw()
    utils.set_seed(123)
    assert draw() == first
    utils.set_seed(124)
    assert draw() != first


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True])
def test_set_seed_rejects_bad_seeds(bad):
    with pytest.raises(ValueError, match="seed"):
        utils.set_seed(bad)


def test_hub_available_is_false_and_instant_when_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    assert utils.hub_available() is False
    assert time.perf_counter() - start < 0.1


def test_hub_available_never_hangs_past_its_timeout(monkeypatch):
    # With the offline flags cleared it really probes the network; here it cannot connect, and must say so fast.
    for flag in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(flag, raising=False)
    monkeypatch.setattr(utils, "_connect", lambda host, port, timeout: time.sleep(30) or True)
    start = time.perf_counter()
    assert utils.hub_available(timeout=0.5) is False
    assert time.perf_counter() - start < 2.0


def test_is_colab_reads_the_environment(monkeypatch):
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    assert utils.is_colab() is False
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab_20261101")
    assert utils.is_colab() is True


def test_cache_dir_honours_camp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CAMP_CACHE", str(tmp_path / "c"))
    path = utils.cache_dir("listener", "v1")
    assert path == tmp_path / "c" / "listener" / "v1" and path.is_dir()


def test_cache_dir_unwritable_says_how_to_fix(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("CAMP_CACHE", str(blocker))
    with pytest.raises(OSError, match="CAMP_CACHE"):
        utils.cache_dir("x")


@pytest.fixture
def fake_drive(tmp_path, monkeypatch):
    """A machine with no explicit cache setting, whose Drive mount point is a temp folder (not yet mounted)."""
    monkeypatch.delenv("CAMP_CACHE", raising=False)
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(utils, "DRIVE_FOLDER", tmp_path / "content" / "drive" / "MyDrive")
    return utils.DRIVE_FOLDER


def test_checkpoint_dir_goes_to_drive_on_colab_once_mounted(fake_drive, tmp_path, monkeypatch):
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab_20261101")  # is_colab() reads this
    # Colab before drive.mount(): the local cache, since there is no Drive to write to.
    local = tmp_path / "xdg" / "empathy-camp" / "checkpoints" / "05_policy_gradients"
    assert utils.checkpoint_dir("05_policy_gradients") == local
    fake_drive.mkdir(parents=True)  # what drive.mount('/content/drive') does
    path = utils.checkpoint_dir("05_policy_gradients")
    assert path == fake_drive / "empathy-camp" / "checkpoints" / "05_policy_gradients" and path.is_dir()
    assert utils.drive_folder() == fake_drive


def test_checkpoint_dir_ignores_a_drive_folder_off_colab(fake_drive, tmp_path):
    # A /content/drive/MyDrive folder on a laptop is not Google Drive: keep using the cache.
    fake_drive.mkdir(parents=True)
    assert utils.drive_folder() is None
    local = tmp_path / "xdg" / "empathy-camp" / "checkpoints" / "02_emotion_classifier"
    assert utils.checkpoint_dir("02_emotion_classifier") == local


def test_checkpoint_dir_explicit_choices_beat_drive(fake_drive, tmp_path, monkeypatch):
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab_20261101")
    fake_drive.mkdir(parents=True)
    # An explicit root wins over everything ...
    assert utils.checkpoint_dir("06_rl_fine_tuning", tmp_path / "mine") == tmp_path / "mine" / "06_rl_fine_tuning"
    # ... and so does an explicit CAMP_CACHE over the automatic Drive folder.
    monkeypatch.setenv("CAMP_CACHE", str(tmp_path / "cache"))
    assert utils.checkpoint_dir("06_rl_fine_tuning") == tmp_path / "cache" / "checkpoints" / "06_rl_fine_tuning"


@pytest.mark.parametrize("bad", ["", "..", "05/policy", "a\\b"])
def test_checkpoint_dir_rejects_paths_as_lesson_names(bad, tmp_path):
    with pytest.raises(ValueError, match="folder name"):
        utils.checkpoint_dir(bad, tmp_path)


def test_checkpoint_dir_unwritable_root_says_how_to_fix(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OSError, match="cannot create the checkpoint folder"):
        utils.checkpoint_dir("02_emotion_classifier", blocker)


def test_atomic_write_keeps_old_file_when_writing_fails(tmp_path, monkeypatch):
    target = tmp_path / "ckpt.bin"
    utils.atomic_write_bytes(target, b"old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        utils.atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.bin"]  # no temp file left behind


def test_key_figure_displays_a_marked_record(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, raw: shown.append(obj))
    utils.key_figure("accuracy", 0.5, "%")
    assert shown[0][utils.KEY_FIGURE_MIME] == {"label": "accuracy", "value": 0.5, "unit": "%"}
    assert shown[0]["text/plain"] == "accuracy: 0.5 %"


# ---- mixed precision: what the hardware does natively --------------------------------------------------------
@pytest.mark.parametrize("gpu, capability, want", [
    (False, None, "no"),  # a CPU (or MPS): full precision
    (True, (7, 5), "fp16"),  # a T4: is_bf16_supported() says True, but only by slow emulation
    (True, (7, 0), "fp16"),  # a V100
    (True, (8, 0), "bf16"),  # an A100
    (True, (9, 0), "bf16"),  # an H100 / H200
])
def test_auto_mixed_precision_follows_the_compute_capability(monkeypatch, gpu, capability, want):
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # what every one of them reports
    assert utils.mixed_precision("auto") == want
    assert utils.weights_dtype(torch.device("cuda" if gpu else "cpu")) == \
        (torch.bfloat16 if want == "bf16" else torch.float32)


def test_auto_mixed_precision_defers_to_accelerate_launch(monkeypatch):
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "fp16")  # what `accelerate launch --mixed_precision fp16` sets
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    assert utils.mixed_precision("auto") == "fp16"
    assert utils.mixed_precision("no") == "no"  # an explicit choice is the user's
    with pytest.raises(utils.ConfigError, match="fp8"):
        utils.mixed_precision("fp8")


def test_a_second_run_in_one_process_may_change_mixed_precision():
    # Accelerate keeps one global state: a plain second Accelerator with another setting is refused.
    from accelerate import Accelerator

    utils.fresh_accelerator(cpu=True, mixed_precision="bf16")
    with pytest.raises(ValueError, match="mixed_precision"):
        Accelerator(cpu=True, mixed_precision="no")
    assert utils.fresh_accelerator(cpu=True, mixed_precision="no").mixed_precision == "no"
    assert utils.fresh_accelerator(cpu=True, mixed_precision="bf16").mixed_precision == "bf16"
    utils.fresh_accelerator(cpu=True, mixed_precision="no")  # leave the process as the other tests expect


def test_the_cache_names_an_encoder_by_what_it_is_not_where_it_lies(tmp_path):
    # A new clone or virtual environment puts the wheel's MiniLM at another path: the embeddings and the listener's
    # head cached by an earlier one must still be found, and a different model must never be mistaken for it.
    import shutil

    from camp.models import encoder_identity, minilm_path

    moved = tmp_path / "elsewhere" / "model"
    shutil.copytree(minilm_path(), moved)
    assert encoder_identity(str(moved)) == encoder_identity(minilm_path())
    (moved / "config.json").write_text((moved / "config.json").read_text().replace("384", "385", 1))
    assert encoder_identity(str(moved)) != encoder_identity(minilm_path())
    assert encoder_identity("distilroberta-base") == "distilroberta-base"  # a hub name is its own identity
