"""Batched environments for emotion inference, for `camp.ppo`'s loops. Introduced in lesson 05.

Both are `camp.roles.BatchedEnv`s: Gymnasium `VectorEnv`s without autoreset (an episode that ends waits for the
next `reset()`, which restarts all of them):

* `num_envs` people per rollout and `max_turns` steps at most per episode;
* `reset(seed=None) -> (obs, info)` with obs of shape (num_envs, D) (`single_observation_space` is a float32
  `Box` of shape (D,)), and `step(actions) -> (obs, rewards, terminated, truncated, info)` with one emotion
  index per person (`single_action_space` is `Discrete(6)`), and `info["correct"]` saying whether each action
  named the person's dominant emotion;
* `state_dict()` / `load_state_dict()` for the random state, so training resumes exactly.

Observations are frozen MiniLM features (384 floats), so a policy is a small head and thousands of episodes
take seconds on a CPU.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from camp.env import BatchedEmpathy, infer_reward, initial_distribution


def _set_spaces(env: VectorEnv, dim: int, low: float = -np.inf, high: float = np.inf) -> None:
    """Float32 feature vectors of `dim` in, one of the six emotions out, for each of `env.num_envs` people."""
    env.single_observation_space = spaces.Box(low, high, (dim,), np.float32)
    env.single_action_space = spaces.Discrete(6)
    env.observation_space = batch_space(env.single_observation_space, env.num_envs)
    env.action_space = batch_space(env.single_action_space, env.num_envs)


class EmotionGuessing(VectorEnv):
    """One-turn emotion inference over a labelled corpus: the article's task.

    Each of `n` people says one text X (drawn at random from `features`/`labels`) and feels a distribution P
    over the six emotions: about 80 % on the text's label, the rest spread with some individual colour
    (`camp.env.initial_distribution`). The agent names Y; the reward is log P(Y | X) (or 1/0 for naming the
    dominant emotion when `correctness`). Every episode ends after that one step.
    """

    metadata = {"autoreset_mode": AutoresetMode.DISABLED}
    max_turns = 1

    def __init__(self, features: np.ndarray, labels, n: int = 256, correctness: bool = False, seed: int = 0):
        self.features, self.labels = np.asarray(features, dtype=np.float32), np.asarray(labels)
        if self.features.ndim != 2 or len(self.features) != len(self.labels):
            raise ValueError(f"features must be (N, D) with one label per row; got {self.features.shape} and "
                             f"{self.labels.shape}")
        if len(self.labels) == 0 or self.labels.min() < 0 or self.labels.max() > 5:
            raise ValueError("labels must be emotion indices 0..5 and there must be at least one")
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        self.num_envs, self.correctness = n, correctness
        _set_spaces(self, self.features.shape[1])  # any features: unbounded
        self.np_random = np.random.default_rng(seed)

    def state_dict(self) -> dict:
        return {"rng": self.np_random.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.np_random.bit_generator.state = state["rng"]

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        if seed is not None:
            self.np_random = np.random.default_rng(seed)
        self.idx = self.np_random.integers(0, len(self.labels), self.num_envs)
        self.probs = initial_distribution(self.labels[self.idx], self.np_random)
        return self.features[self.idx], {}  # (n, D)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        actions = np.asarray(actions)
        reward = infer_reward(self.probs, actions, self.correctness)
        correct = actions == self.probs.argmax(axis=1)
        done = np.ones(self.num_envs, dtype=bool)
        return self.features[self.idx], reward, done, ~done, {"correct": correct}


class InferDialogues(VectorEnv):
    """Multi-turn emotion inference with the lesson-03 people (`BatchedEmpathy` in infer mode).

    Each turn the person says a line, the agent names an emotion, the person's feelings move (named right, they
    feel understood and ease; named wrong, they drift towards anger or sadness) and they answer. Reward per turn
    is log P(Y_t | X_t) under the person's *current* distribution, so credit must flow across turns: GAE's job.
    Episodes end when the person feels better, or after `max_turns`. The random stream is the world's:
    `np_random` is `world.np_random`.
    """

    metadata = {"autoreset_mode": AutoresetMode.DISABLED}

    def __init__(self, n: int = 128, max_turns: int = 4, situations=None, correctness: bool = False, seed: int = 0):
        from camp.models import cached_embed

        self.world = BatchedEmpathy(n, "infer", max_turns, situations=situations, correctness=correctness)
        self.world.np_random = np.random.default_rng(seed)
        lines = sorted({t for s in self.world.situations for t in (s.opening, *s.better, *s.worse)})
        self.vectors = dict(zip(lines, cached_embed(lines), strict=True))
        self.num_envs, self.max_turns = n, max_turns
        _set_spaces(self, 384, -1.0, 1.0)  # MiniLM's unit vectors

    # One random stream, the world's: VectorEnv's own (lazily seeded) generator is never used.
    @property
    def np_random(self) -> np.random.Generator:
        return self.world.np_random

    @np_random.setter
    def np_random(self, value: np.random.Generator) -> None:
        self.world.np_random = value

    @property
    def np_random_seed(self) -> int | None:
        return self.world.np_random_seed

    def state_dict(self) -> dict:
        return self.world.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.world.load_state_dict(state)

    def _obs(self, said: list[str]) -> np.ndarray:
        return np.stack([self.vectors[t] for t in said])  # (n, 384)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        said, info = self.world.reset(seed=seed, options=options)
        return self._obs(said), info

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        said, reward, terminated, truncated, info = self.world.step(np.asarray(actions))
        return self._obs(said), reward, terminated, truncated, {"correct": info["correct"]}
