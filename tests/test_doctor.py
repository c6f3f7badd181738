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
