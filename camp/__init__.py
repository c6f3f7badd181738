"""Empathy Camp: the library behind the notebooks.

Modules, one concern each:
* course tooling: `utils` (device, seeding, caching), `doctor` (setup check), `course` (the solutions ->
  lessons pipeline), `runner` (execute notebooks, HTML report), `cli` (`python -m camp`), `bench`;
* data and models: `data`, `corpus_checks`, `models`, `baselines`, `metrics`, `train`, `checkpoint`, `viz`;
* the empathy environment: `env`, `listener`, `policies`, `rewards`, `judge`, `widgets`;
* reinforcement learning: `rl` (REINFORCE and PPO pieces and loops), `rl_envs` (batched emotion inference).
"""

__version__ = "0.1.0"
