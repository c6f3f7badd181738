"""Shared fixtures. Tests never reach a model hub: HF_HUB_OFFLINE is forced on."""

import os
from pathlib import Path

# Under `pytest -n 2` two workers (and the notebook kernels and training subprocesses they start) share the
# machine's cores. Two OpenMP pools of 2 threads on 2 cores spin against each other and run many times slower,
# so each worker's children get one thread. (Must happen before torch is imported.)
if os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") != "1":
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("*/*.ipynb"))
LESSONS = sorted((ROOT / "lessons").glob("*/*.ipynb"))


@pytest.fixture
def root() -> Path:
    return ROOT


# ---- expensive objects, built once per test process (each xdist worker has its own) ----------------------------
@pytest.fixture(scope="session")
def listener():
    """The environment's default listener (MiniLM + the cached logistic-regression head)."""
    from camp.listener import Listener

    return Listener.default()


@pytest.fixture(scope="session")
def emotions():
    """The offline emotion corpus, all three splits."""
    from camp import data

    return data.load_emotions("offline", verbose=False)


@pytest.fixture(scope="session")
def _smollm2():
    from camp import models

    return models.load_policy()


@pytest.fixture(scope="session")
def fresh_policy(_smollm2):
    """Make a new `PolicyWithValue` (LoRA initialised from seed 0) around a copy of SmolLM2, which is loaded
    from disk once per process: a copy takes a fraction of a second, a load several seconds."""
    import copy

    import torch

    from camp import lm

    def make():
        model, tokenizer = _smollm2
        torch.manual_seed(0)
        return lm.PolicyWithValue(copy.deepcopy(model), tokenizer)

    return make


def _kill_after_checkpoint(cmd: list[str], path: Path, min_step: int, timeout: float = 300) -> int:
    """Start `cmd`, SIGKILL it once the checkpoint at `path` records `min_step` steps, and return that step."""
    import signal
    import subprocess
    import time

    from camp import checkpoint

    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    step, deadline = 0, time.time() + timeout
    while step < min_step and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
        if path.exists():
            step = checkpoint.load_checkpoint(path)[1]["progress"]["step"]
    assert proc.poll() is None, "training finished before it could be killed; give it more steps"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return step


def _resumed_history_matches(cli, tmp_path: Path, keys: tuple[str, ...], steps: int = 4, abs_tol: float = 1e-4):
    """Train with `cli(out, *extra)` (a training command with `steps` steps, a checkpoint every step) straight
    through, and again SIGKILLed after its second checkpoint then resumed with --resume; each logged `key` of
    the two histories must agree at every step."""
    import json
    import subprocess

    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run(cli(straight), check=True, capture_output=True, timeout=600)
    step = _kill_after_checkpoint(cli(killed), killed / "checkpoint.safetensors", min_step=2)
    assert 2 <= step < steps and not (killed / "history.json").exists()
    subprocess.run(cli(killed, "--resume"), check=True, capture_output=True, timeout=600)
    a = json.loads((straight / "history.json").read_text())
    b = json.loads((killed / "history.json").read_text())
    assert [h["step"] for h in b] == list(range(1, steps + 1))
    for key in keys:
        assert [h[key] for h in a] == pytest.approx([h[key] for h in b], abs=abs_tol), key


@pytest.fixture
def resumed_history_matches():
    """A training CLI killed with SIGKILL part-way and resumed logs what an uninterrupted run logs."""
    return _resumed_history_matches


@pytest.fixture
def kill_after_checkpoint():
    """A training subprocess killed with SIGKILL part-way, as a crash or a lost Colab session would."""
    return _kill_after_checkpoint


# Seconds the longest tests took (`make test` and `make test-full` print them with --durations; refresh this when a cost
# changes a lot, and rename a key with its test: a key that names no collected test stops the suite). Everything
# else takes about a second. The fast tier (`-m "not slow"`) schedules from the same table.
DURATIONS = {
    "tests/test_notebooks.py::test_blank_lesson_fails_each_graded_test_because_its_exercise_is_blank[07_learning_from_preferences]": 82,
    "tests/test_notebooks.py::test_solution_runs_in_smoke_size_and_passes_its_graded_tests[07_learning_from_preferences]": 73,
    "tests/test_notebooks.py::test_solution_runs_in_smoke_size_and_passes_its_graded_tests[08_evaluation_and_responsible_use]": 65,
    "tests/test_notebooks.py::test_blank_lesson_fails_each_graded_test_because_its_exercise_is_blank[08_evaluation_and_responsible_use]": 64,
    "tests/test_notebooks.py::test_solution_runs_in_smoke_size_and_passes_its_graded_tests[06_rl_fine_tuning]": 47,
    "tests/test_notebooks.py::test_blank_lesson_fails_each_graded_test_because_its_exercise_is_blank[06_rl_fine_tuning]": 47,
    "tests/test_notebooks.py::test_solution_runs_in_smoke_size_and_passes_its_graded_tests[03_empathy_environment]": 42,
    "tests/test_reward_model.py::test_cli_train_reward_writes_model_and_report": 41,
    "tests/test_notebooks.py::test_solution_runs_in_smoke_size_and_passes_its_graded_tests[02_emotion_classifier]": 34,
    "tests/test_dpo.py::test_on_policy_pairs_come_from_the_scorer_and_ties_train_nothing": 30,
    "tests/test_classroom.py::test_round_trip_scores_correct_and_blank_submissions": 29,
    "tests/test_notebooks.py::test_blank_lesson_fails_each_graded_test_because_its_exercise_is_blank[02_emotion_classifier]": 27,
    "tests/test_browser.py::test_lesson_07_rating_click_writes_one_line": 25,
    "tests/test_browser.py::test_lesson_03_chat_playground_in_jupyterlab": 25,
    "tests/test_notebooks.py::test_blank_lesson_fails_each_graded_test_because_its_exercise_is_blank[01_emotion_data]": 19,
    "tests/test_notebooks.py::test_solution_runs_in_smoke_size_and_passes_its_graded_tests[01_emotion_data]": 19,
    # the full tier only (make test-full, clean clone of 2026-12-07): quick mode, resume, two processes, the wheel
    "tests/test_notebooks.py::test_solution_runs_in_quick_mode_and_passes_its_graded_tests[02_emotion_classifier]": 342,
    "tests/test_notebooks.py::test_solution_runs_in_quick_mode_and_passes_its_graded_tests[08_evaluation_and_responsible_use]": 253,
    "tests/test_notebooks.py::test_solution_runs_in_quick_mode_and_passes_its_graded_tests[07_learning_from_preferences]": 318,
    "tests/test_notebooks.py::test_solution_runs_in_quick_mode_and_passes_its_graded_tests[06_rl_fine_tuning]": 185,
    "tests/test_classroom.py::test_autograde_gives_every_lesson_s_reference_answers_full_points": 413,
    "tests/test_bench_prefs.py::test_timing_compares_steps_side_by_side": 82,
    "tests/test_rlhf_train.py::test_sigkill_then_resume_matches_an_uninterrupted_run": 73,
    "tests/test_wheel_install.py::test_wheel_installed_like_colab_runs_doctor_and_lessons": 90,
    "tests/test_cheats.py::test_replying_to_the_visible_people_by_hand_and_borrowing_the_rest_fails": 107,
    "tests/test_train.py::test_accelerate_launch_two_cpu_processes_trains_as_well": 93,
    "tests/test_train.py::test_sigkill_then_resume_matches_an_uninterrupted_run": 84,
    "tests/test_cheats.py::test_the_scripted_policy_must_not_borrow_camps_or_peek_at_people": 65,
    "tests/test_dpo.py::test_sigkill_then_resume_matches_an_uninterrupted_run": 60,
    "tests/test_notebooks.py::test_solution_runs_in_quick_mode_and_passes_its_graded_tests[03_empathy_environment]": 60,
    "tests/test_reward_model.py::test_resume_continues_exactly": 35,
}


def stale_durations(durations: dict[str, float], nodeids: list[str]) -> list[str]:
    """The keys of `durations` that name no collected test: renamed or removed tests, whose cost would otherwise
    be forgotten silently (the test runs last instead of first)."""
    collected = set(nodeids)
    return sorted(key for key in durations if key not in collected)


@pytest.hookimpl(tryfirst=True)  # before -m and -k deselect: every collected test counts
def pytest_collection_modifyitems(config, items):
    """Longest first. With `--dist load --maxschedchunk 1` (make test) each worker that falls idle takes the
    longest test left, so the two workers finish close together; a plain `pytest` keeps the same order.

    When the whole suite was collected (no file or test named on the command line), every key of DURATIONS must
    name a collected test, or the run stops with the stale keys named."""
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        if stale := stale_durations(DURATIONS, [item.nodeid for item in items]):
            raise pytest.UsageError("tests/conftest.py DURATIONS names tests that were not collected (renamed or "
                                    "removed?); rename or drop these keys:\n  " + "\n  ".join(stale))
    items.sort(key=lambda item: -DURATIONS.get(item.nodeid, 1))
