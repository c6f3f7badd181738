import subprocess
import sys

from camp.course import doctor


def test_versions_report_missing_packages_as_none():
    versions = doctor.package_versions(("torch", "surely-not-a-package-xyz"))
    assert versions["torch"] and versions["surely-not-a-package-xyz"] is None


def test_lesson_plan_uses_offline_assets_without_hub():
    plan = doctor.lesson_plan(hub=False)
    encoder = [r for r in plan if r["lesson"] == "02_emotion_classifier" and r["asset"] == "encoder"]
    assert encoder and encoder[0]["source"] == "offline"


def test_lesson_plan_prefers_hub_when_reachable():
    rows = doctor.lesson_plan(hub=True, lessons=("06_rl_fine_tuning",))
    policy = next(r for r in rows if r["asset"] == "policy")
    assert policy["source"] == "hub" and "SmolLM2" in policy["what"]


def test_missing_asset_offline_is_a_problem_with_a_fix(monkeypatch):
    missing = doctor.Asset("policy", "hub model", "wheel model", "no_such_module_abc", "pip install it")
    monkeypatch.setitem(doctor.ASSETS, "policy", missing)
    plan = doctor.lesson_plan(hub=False, lessons=("06_rl_fine_tuning",))
    found = doctor.problems({"torch": "2"}, plan)
    assert any("06_rl_fine_tuning" in p and "pip install it" in p for p in found)
    # Online, the hub covers the same asset, so nothing is missing.
    assert not doctor.problems({"torch": "2"}, doctor.lesson_plan(hub=True, lessons=("06_rl_fine_tuning",)))


def test_missing_required_package_is_a_problem():
    found = doctor.problems({"torch": None, "nbgrader": None}, [])
    assert found == ["package torch is missing: run `make setup` or `pip install -e .`"]


def test_doctor_cli_exits_zero_on_a_ready_machine():
    out = subprocess.run([sys.executable, "-m", "camp", "doctor"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "device" in out.stdout and "Ready" in out.stdout


def _emotion_sources(notebook) -> set[str]:
    """The first argument of every `load_emotions(...)` call in a solution notebook's code."""
    import re

    import nbformat

    code = "\n".join(c.source for c in nbformat.read(notebook, 4).cells if c.cell_type == "code")
    return set(re.findall(r"load_emotions\(([^,)]*)", code))


def test_doctor_names_the_data_each_lesson_really_loads():
    # A lesson that can load dair-ai/emotion from the hub lists "emotions"; one that always reads camp's corpus
    # lists "corpus" and must not claim the hub data set.
    from conftest import SOLUTIONS

    for notebook in SOLUTIONS:
        lesson, sources = notebook.parent.name, _emotion_sources(notebook)
        assets = doctor.LESSON_ASSETS[lesson]
        online = bool(sources - {'"offline"'})
        assert ("emotions" in assets) == online, (lesson, sources, assets)
        if sources:
            assert "corpus" in assets, lesson
    rows = doctor.lesson_plan(hub=True, lessons=("03_empathy_environment",))
    assert not [r for r in rows if "dair-ai" in r["what"]]
    rows = doctor.lesson_plan(hub=True, lessons=("02_emotion_classifier",))  # its third test: real tweets
    assert [r for r in rows if "dair-ai" in r["what"]]


def test_a_failed_hub_download_falls_back_to_the_wheel_with_a_warning(monkeypatch):
    # The probe says the hub is there, but the download fails (HF_HUB_OFFLINE=1 makes every download fail here).
    import pytest

    from camp import models

    monkeypatch.setattr(models.utils, "hub_available", lambda: True)
    with pytest.warns(UserWarning, match="all-MiniLM-L6-v2 could not be downloaded .*offline copy"):
        model, _ = models.load_encoder("auto")
    assert model.config.num_labels == 6
    with pytest.raises(OSError):  # a model the learner named is never swapped for another
        models.load_encoder("someone/no-such-encoder-xyz")
