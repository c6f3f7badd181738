"""Small helpers every lesson uses: device choice, seeding, environment detection, caching.

Introduced in lesson 00.
"""

from __future__ import annotations

import os
import random
import socket
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

import numpy as np
import torch

HUB_HOST = "huggingface.co"
_DEVICES = ("auto", "cpu", "cuda", "mps")


class CampError(Exception):
    """camp's own errors: bad input or state the user can fix; the message says what to do."""


class ConfigError(CampError, ValueError):
    """A config or argument value that cannot work; the message names it and the range that would."""


def check_config(config, checks: dict[str, bool]) -> None:
    """Raise ConfigError naming every field of `config` whose check in `checks` (field -> ok) failed, with its
    value: one place for the message every config's `__post_init__` gives."""
    bad = [name for name, ok in checks.items() if not ok]
    if bad:
        values = ", ".join(f"{b}={getattr(config, b)!r}" for b in bad)
        raise ConfigError(f"invalid {type(config).__name__} values: {values}")


MIXED_PRECISIONS = ("no", "fp16", "bf16")


def mixed_precision(choice: str = "auto") -> str:
    """Accelerate's mixed_precision for `choice`: "no", "fp16", "bf16", or "auto".

    "auto" follows `accelerate launch --mixed_precision X` when the run was started that way; otherwise it picks
    what the hardware does natively: bf16 on GPUs of compute capability 8.0 or higher (A100, L4, H100), fp16
    with loss scaling on older GPUs (T4, V100: `torch.cuda.is_bf16_supported()` is True on a T4, but only by
    slow emulation), and none on a CPU or Apple's MPS.
    """
    if choice == "auto":
        choice = os.environ.get("ACCELERATE_MIXED_PRECISION") or (
            ("bf16" if torch.cuda.get_device_capability()[0] >= 8 else "fp16") if torch.cuda.is_available()
            else "no")
    if choice not in MIXED_PRECISIONS:
        raise ConfigError(f"mixed_precision must be 'auto' or one of {MIXED_PRECISIONS}, got {choice!r}")
    return choice


def weights_dtype(device: torch.device | str = "auto") -> torch.dtype:
    """The dtype to hold a frozen model's weights in on `device`: bfloat16 where the hardware computes in it
    natively (the same rule as `mixed_precision`), float32 elsewhere (CPUs, and fp16-era GPUs, whose fp16 would
    need loss scaling)."""
    device = get_device(device) if isinstance(device, str) else device
    if device.type == "cuda" and torch.cuda.get_device_capability(device)[0] >= 8:
        return torch.bfloat16
    return torch.float32


def fresh_accelerator(**kwargs):
    """`accelerate.Accelerator(**kwargs)` whose settings hold even when an earlier run in this process used
    others: Accelerate keeps one global state and refuses a changed mixed precision, which breaks a second
    training run in the same notebook or benchmark. The process group (several processes) is kept."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=False)
    return Accelerator(**kwargs)


def length_sorted_batches(texts: list[str], batch_size: int) -> list[np.ndarray]:
    """Indices of `texts` in batches of similar length (shortest first), so each batch pads only to its own
    longest text: several times faster than padding everything to the model's limit. Results go back with
    `out[batch] = ...`.

    >>> [b.tolist() for b in length_sorted_batches(["aaa", "a", "aa"], 2)]
    [[1, 2], [0]]
    """
    order = np.argsort([len(t) for t in texts])
    return [order[start:start + batch_size] for start in range(0, len(texts), batch_size)]


def get_device(preference: str = "auto") -> torch.device:
    """Return the torch device to use.

    Args:
        preference: "auto" picks CUDA, then Apple MPS, then the CPU. "cpu", "cuda" or "mps" ask for one;
            "cuda:1" style indices are accepted.

    Raises:
        ValueError: for an unknown name, or a device this machine does not have (with what to do instead).

    >>> get_device("cpu")
    device(type='cpu')
    """
    if not isinstance(preference, str) or preference.split(":")[0] not in _DEVICES:
        raise ValueError(f"device must be one of {_DEVICES} (optionally 'cuda:N'), got {preference!r}")
    kind = preference.split(":")[0]
    if kind == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA GPU is visible; use get_device('auto') "
                         "to fall back to the CPU, or on Colab choose Runtime > Change runtime type > GPU.")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("device 'mps' was asked for but Apple MPS is not available; use 'auto' or 'cpu'.")
    return torch.device(preference)


def set_seed(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch (all devices) so a run can be repeated.

    Args:
        seed: a non-negative integer.
        deterministic: also ask torch for deterministic kernels (slower on GPU).
    """
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)


def is_colab() -> bool:
    """True inside Google Colab."""
    return "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ


def is_grading() -> bool:
    """True while nbgrader executes a notebook (validate or autograde): lessons run in smoke size then."""
    return bool(os.environ.get("NBGRADER_EXECUTION"))


SIZES = ("smoke", "quick", "full")


def run_size(quick: bool | str = True) -> str:
    """The size a lesson runs at, from its `QUICK` parameter (introduced in lesson 00).

    * "smoke" (`QUICK = "smoke"`, and always while nbgrader executes a notebook): every cell runs, with the fewest
      steps, people and tokens that still go through each code path. CI and autograding use it; it proves that
      the lesson works, not what it teaches, so quality checks (`quality_check`) are skipped.
    * "quick" (`QUICK = True`): a CPU-sized run whose results are worth reading.
    * "full" (`QUICK = False`): the sizes the lesson's kept figures come from (a GPU, or a long CPU run).

    >>> run_size(True), run_size(False), run_size("smoke")
    ('quick', 'full', 'smoke')
    """
    if quick == "smoke" or is_grading():
        return "smoke"
    if isinstance(quick, bool | np.bool_):
        return "quick" if quick else "full"
    raise ValueError(f'QUICK must be True, False or "smoke", got {quick!r}')


def quality_check(ok: bool, message: str, size: str) -> None:
    """Assert what a lesson teaches (for example "PPO reaches 0.6 accuracy") in quick and full size. In smoke size
    the run is too small to show it: print that the check was skipped instead.

    >>> quality_check(False, "PPO reaches 0.6 accuracy", "smoke")
    skipped in smoke size (too few steps to show it): PPO reaches 0.6 accuracy
    """
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    if size == "smoke":
        print(f"skipped in smoke size (too few steps to show it): {message}")
    elif not ok:
        raise AssertionError(message)


def hub_offline_requested() -> bool:
    """True when the user asked the Hugging Face libraries to stay offline."""
    flags = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
    return any(os.environ.get(f, "").strip().lower() in ("1", "true", "yes", "on") for f in flags)


def _connect(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _within(fn: Callable[[], Any], seconds: float, default: Any) -> Any:
    # DNS lookups ignore socket timeouts, so the whole probe runs in a thread we stop waiting for.
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        return pool.submit(fn).result(timeout=seconds)
    except FutureTimeout:
        return default
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def hub_available(timeout: float = 1.5) -> bool:
    """Whether the Hugging Face Hub can be reached. Answers within about `timeout` seconds, never hangs.

    Returns False at once when HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE / HF_DATASETS_OFFLINE) is set.
    """
    if hub_offline_requested():
        return False
    return bool(_within(lambda: _connect(HUB_HOST, 443, timeout), timeout + 0.5, False))


def cache_dir(*parts: str) -> Path:
    """A per-user cache folder for camp (converted models, fitted listeners), created on demand.

    Honours $CAMP_CACHE, then $XDG_CACHE_HOME/empathy-camp, then ~/.cache/empathy-camp. On Colab, point
    CAMP_CACHE at a Google Drive folder so nothing is lost on a disconnect.
    """
    root = os.environ.get("CAMP_CACHE")
    if root:
        base = Path(root).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg) if xdg else Path.home() / ".cache") / "empathy-camp"
    return _make_folder(base.joinpath(*parts), "the camp cache folder", "Set CAMP_CACHE to a writable folder.")


def _make_folder(path: Path, what: str, advice: str) -> Path:
    """Create `path` (and its parents) or raise an OSError that says what to do instead."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OSError(f"cannot create {what} {path}: {err}. {advice}") from err
    return path


# Where `drive.mount("/content/drive")` puts "My Drive" on Colab.
DRIVE_FOLDER = Path("/content/drive/MyDrive")


def drive_folder() -> Path | None:
    """Google Drive's "My Drive" folder when running on Colab with Drive mounted, else None."""
    return DRIVE_FOLDER if is_colab() and DRIVE_FOLDER.is_dir() else None


def checkpoint_dir(lesson: str, root: str | os.PathLike | None = None) -> Path:
    """The folder where `lesson` keeps its training checkpoints, created on demand.

    Introduced in lesson 02. The first of these that applies wins:

    1. `root` given: root/lesson.
    2. $CAMP_CACHE set: camp's cache folder (an explicit choice beats the automatic one below).
    3. On Colab with Google Drive mounted: My Drive/empathy-camp/checkpoints/lesson, so a disconnect loses
       nothing and `RESUME = True` continues the run in a new session.
    4. Otherwise camp's cache folder, `cache_dir("checkpoints", lesson)`.

    Args:
        lesson: the lesson's folder name, such as "05_policy_gradients".
        root: a folder to keep every lesson's checkpoints under instead.

    Raises:
        ValueError: if `lesson` is not a plain folder name.
        OSError: if the folder cannot be created (the message says what to set instead).
    """
    if not lesson or lesson in (".", "..") or any(sep in lesson for sep in ("/", "\\")):
        raise ValueError(f"lesson must be a folder name such as '05_policy_gradients', got {lesson!r}")
    drive = drive_folder()
    if root is None and drive is not None and not os.environ.get("CAMP_CACHE"):
        root = drive / "empathy-camp" / "checkpoints"
    if root is None:
        return cache_dir("checkpoints", lesson)
    return _make_folder(Path(root).expanduser() / lesson, "the checkpoint folder",
                        "Pass another root, or set CAMP_CACHE to a writable folder.")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` so that a crash leaves either the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


KEY_FIGURE_MIME = "application/vnd.camp.key-figure+json"


def key_figure(label: str, value: float | int | str, unit: str = "") -> None:
    """Show a lesson's headline number and mark it so `python -m camp run` can list it in its report."""
    figure = {"label": label, "value": value, "unit": unit}
    try:
        from IPython.display import display

        text = f"{label}: {value}{(' ' + unit) if unit else ''}"
        display({KEY_FIGURE_MIME: figure, "text/plain": text}, raw=True)
    except ImportError:  # outside IPython: print instead
        print(f"{label}: {value} {unit}".rstrip())


def key_table(label: str, table, digits: int = 3) -> None:
    """Show a lesson's headline table, numbers rounded to `digits`, and mark it as a key figure, so
    `python -m camp run` keeps its values ({column: {row: value}}) beside the run time."""
    import pandas as pd

    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"key_table needs a pandas DataFrame, got {type(table).__name__}")
    shown = table.round(digits)

    def plain(v):
        if isinstance(v, bool) or v is None:
            return v
        if isinstance(v, int | float | np.integer | np.floating):
            return None if np.isnan(v) else round(float(v), digits)
        return str(v)

    values = {str(c): {str(r): plain(v) for r, v in shown[c].items()} for c in shown.columns}
    try:
        from IPython.display import display

        display({KEY_FIGURE_MIME: {"label": label, "value": values, "unit": ""}, "text/plain": shown.to_string(),
                 "text/html": shown.to_html()}, raw=True)
    except ImportError:
        print(f"{label}:\n{shown.to_string()}")
