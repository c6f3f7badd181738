"""The roles camp's pieces play, each with one call shape. Lessons 03-08 plug any of them into the others.

* A **reply policy** answers people: `policy(utterances, people) -> replies`, one reply string per utterance.
  `people` are the `camp.data.Situation`s behind the utterances; most policies ignore them (a fair policy
  must), the oracle and scripted yardsticks read them. Examples: `camp.policies.reflective(...)`,
  `camp.lm.language_model_policy(...)`, `camp.safety.SafeResponder(policy)`. A function of utterances
  alone becomes one with `from_texts`.
* A **scorer** judges replies: `scorer(replies, people) -> scores`, a float array of shape (N,). Examples:
  `camp.env.ReplyScorer()` (the environment's reward), `camp.judge.score` (the independent judge),
  `camp.reward_model.RewardModel` (a reward model learned from preferences, lesson 07).
  `camp.rlhf.train_rlhf` trains against any scorer; `camp.evaluate.evaluate_replies` measures with one.
* A **reward** scores one step of the environment in respond mode: `reward(replies, **context) -> rewards`, a
  float array of shape (N,). The context is `camp.env.transition_context`'s, by keyword: `valence_before`,
  `valence_after`, `understood_before`, `understood_after` (arrays over the N people), `utterances` (what each
  said, which the replies answer) and `contexts` (their situations); a reward takes the keywords it needs and
  `**context` for the rest. The environment calls its `reward_fn` this way and nothing else. Examples:
  `camp.env.default_reward`, and `spec.total` of any `camp.rewards.RewardSpec` (calling the spec itself also
  gives the breakdown per term).
* A **batched environment** steps N episodes at once: a Gymnasium `VectorEnv` (`gymnasium.vector.VectorEnv`)
  with `num_envs`, `single_observation_space` / `single_action_space` and their batched `observation_space` /
  `action_space`, `metadata["autoreset_mode"]` = `AutoresetMode.DISABLED` (an episode that ends waits for the
  next `reset()`, which restarts all N: camp's loops reset themselves), plus `max_turns` (the most steps an
  episode takes) and `state_dict()` / `load_state_dict()` for its random state, so training resumes exactly.
  `reset(*, seed=None, options=None) -> (obs, info)`; `step(actions) -> (obs, rewards, terminated, truncated,
  info)` with arrays of length `num_envs`. In an environment that `camp.ppo` trains in, `info["correct"]` is a
  bool array: whether each action named the person's dominant emotion (in the state before the step).
  Examples: `camp.env.BatchedEmpathy` (observations are what people say; `correct` in infer mode),
  `camp.rl_envs.EmotionGuessing` and `camp.rl_envs.InferDialogues` (observations are feature vectors). The
  protocol below checks only what camp's loops use, so a small stand-in (a test's bandit) qualifies too. A
  single person behind the plain Gymnasium API is `camp.env.EmpathyEnv`.

The RL heads of lesson 05 (`camp.ppo.ActorCritic`) are not reply policies: they map a batch of observations
to action logits and values, `head(obs) -> (logits, values)`, and act in a batched environment.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class ReplyPolicy(Protocol):
    def __call__(self, utterances: list[str], people: Sequence[Any] | None = None) -> list[str]: ...


@runtime_checkable
class Scorer(Protocol):
    def __call__(self, replies: Sequence[str], people: Sequence[Any]) -> np.ndarray: ...


@runtime_checkable
class Reward(Protocol):
    def __call__(self, replies: Sequence[str], **context: Any) -> np.ndarray: ...


@runtime_checkable
class BatchedEnv(Protocol):
    num_envs: int
    max_turns: int

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]: ...

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict]: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


def from_texts(fn: Callable[[list[str]], Sequence[str]]) -> ReplyPolicy:
    """A reply policy from a function of the utterances alone (it never sees the people).

    >>> echo = from_texts(lambda said: [s.upper() for s in said])
    >>> echo(["hi"], people=["ignored"])
    ['HI']
    """

    def policy(utterances: list[str], people: Sequence[Any] | None = None) -> list[str]:
        replies = list(fn(list(utterances)))
        if len(replies) != len(utterances):
            raise ValueError(f"the policy returned {len(replies)} replies for {len(utterances)} utterances")
        return replies

    return policy
