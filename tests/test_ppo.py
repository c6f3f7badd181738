"""camp.ppo: learning on a bandit and on separable emotion features, config errors, NaN guard, exact resume."""

import math

import numpy as np
import pytest
import torch

from camp import ppo, rl_envs
from camp.roles import BatchedEnv
from camp.utils import ConfigError


@pytest.mark.parametrize("kwargs, message", [
    ({"n_minibatches": 0}, "n_minibatches=0"),
    ({"clip_range": -0.1}, "clip_range=-0.1 must be positive"),
    ({"gae_lambda": 1.5}, "must lie in"),
    ({"lr": 0}, "lr=0 must be positive"),
    ({"updates": 0}, "updates=0"),
])
def test_bad_config_is_refused_with_the_reason(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ppo.PPOConfig(**kwargs)


class Bandit:
    """Two arms behind a constant observation: arm 1 pays 1, arm 0 pays 0. A `camp.roles.BatchedEnv`."""

    max_turns = 1

    def __init__(self, n=64, payout=(0.0, 1.0)):
        self.num_envs, self.payout = n, np.array(payout)
        self.rng = np.random.default_rng(0)

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        return np.ones((self.num_envs, 3), dtype=np.float32), {}

    def step(self, actions):
        reward = self.payout[actions] + 0.1 * self.rng.standard_normal(self.num_envs)
        done = np.ones(self.num_envs, bool)
        return self.reset()[0], reward, done, ~done, {"correct": actions == 1}

    def state_dict(self):
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state):
        self.rng.bit_generator.state = state["rng"]


def test_the_bandit_is_a_batched_env():
    assert isinstance(Bandit(), BatchedEnv)


def test_ppo_learns_the_better_arm_of_a_bandit():
    cfg = ppo.PPOConfig(updates=15, lr=0.05, progress=False)
    policy, history = ppo.train_ppo(ppo.ActorCritic(3, 2, hidden=0), Bandit(), cfg)
    assert history[0]["reward/mean"] < 0.7  # starts near 0.5: both arms equally likely
    assert history[-1]["reward/mean"] > 0.9  # and learns to pull arm 1
    assert all(math.isfinite(h["loss/policy"]) for h in history)


@pytest.mark.parametrize("baseline", ["none", "value", "whitened"])
def test_reinforce_learns_the_bandit_and_reports_gradient_variance(baseline):
    cfg = ppo.PPOConfig(updates=40, lr=0.05, progress=False)
    _, history = ppo.train_reinforce(ppo.ActorCritic(3, 2, hidden=0), Bandit(), cfg, baseline=baseline)
    assert history[-1]["reward/mean"] > 0.8
    assert all(h["grad/variance"] >= 0 for h in history)


def test_nan_rewards_stop_training_before_any_update():
    policy = ppo.ActorCritic(3, 2, hidden=0)
    before = [p.detach().clone() for p in policy.parameters()]
    cfg = ppo.PPOConfig(updates=3, n_minibatches=2, progress=False)
    with pytest.raises(FloatingPointError, match="not finite"):
        ppo.train_ppo(policy, Bandit(n=8, payout=(0.0, float("nan"))), cfg)
    assert all(torch.equal(a, b) for a, b in zip(before, policy.parameters(), strict=True))


def test_env_size_must_match_minibatches():
    with pytest.raises(ValueError, match="multiple of n_minibatches"):
        ppo.train_ppo(ppo.ActorCritic(3, 2, hidden=0), Bandit(n=10), ppo.PPOConfig(n_minibatches=4, progress=False))


def test_interrupted_run_resumes_exactly(tmp_path):
    def run(cfg, resume=False, callback=None):
        torch.manual_seed(123)
        return ppo.train_ppo(ppo.ActorCritic(3, 2, hidden=8), Bandit(n=16), cfg, resume=resume, callback=callback)

    kwargs = {"updates": 6, "n_minibatches": 2, "lr": 0.01, "progress": False}
    straight, straight_hist = run(ppo.PPOConfig(**kwargs))

    def crash(update, _record):
        if update == 5:
            raise KeyboardInterrupt  # killed after the checkpoint at update 3 and two more updates

    cfg = ppo.PPOConfig(**kwargs, checkpoint_dir=str(tmp_path), checkpoint_every=3)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, callback=crash)
    resumed, resumed_hist = run(cfg, resume=True)
    for a, b in zip(straight.parameters(), resumed.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    assert [h["reward/mean"] for h in resumed_hist] == [h["reward/mean"] for h in straight_hist]


def test_resume_without_a_checkpoint_dir_is_refused():
    with pytest.raises(ValueError, match="checkpoint_dir"):
        ppo.train_ppo(ppo.ActorCritic(3, 2, hidden=0), Bandit(), ppo.PPOConfig(progress=False), resume=True)


def test_ppo_learns_emotion_guessing_on_separable_features():
    # Noisy one-hot features: a linear head can learn them, but only from the reward signal.
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 6, 600)
    features = np.eye(6, dtype=np.float32)[labels] + 0.3 * rng.standard_normal((600, 6)).astype(np.float32)
    world = rl_envs.EmotionGuessing(features[:500], labels[:500], n=128)
    cfg = ppo.PPOConfig(updates=25, lr=0.03, eval_every=25, progress=False)
    policy, history = ppo.train_ppo(ppo.ActorCritic(6, 6, hidden=0), world, cfg, eval_data=(features[500:], labels[500:]))
    assert history[0]["reward/correct"] < 0.35  # starts near chance, 1/6
    assert history[-1]["eval/accuracy"] > 0.9


def test_supervised_reference_learns_and_reports_on_the_same_axis():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 6, 300)
    features = np.eye(6, dtype=np.float32)[labels] + 0.3 * rng.standard_normal((300, 6)).astype(np.float32)
    _, history = ppo.train_supervised(ppo.ActorCritic(6, 6, hidden=0), features, labels, samples=2560,
                                     batch_size=128, lr=0.03, eval_data=(features, labels))
    assert history[-1]["samples"] == 2560 and history[-1]["eval/accuracy"] > 0.9




def test_reinforce_checkpoints_and_resumes_exactly(tmp_path):
    def run(cfg, resume=False, callback=None):
        torch.manual_seed(7)
        return ppo.train_reinforce(ppo.ActorCritic(3, 2, hidden=0), Bandit(n=16), cfg, baseline="value",
                                   resume=resume, callback=callback)

    kwargs = {"updates": 5, "lr": 0.05, "progress": False}
    straight, straight_hist = run(ppo.PPOConfig(**kwargs))

    def crash(update, _record):
        if update == 4:
            raise KeyboardInterrupt

    cfg = ppo.PPOConfig(**kwargs, checkpoint_dir=str(tmp_path), checkpoint_every=2)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, callback=crash)
    resumed, resumed_hist = run(cfg, resume=True)
    assert [h["step"] for h in resumed_hist] == [1, 2, 3, 4, 5]
    assert [h["reward/mean"] for h in resumed_hist] == [h["reward/mean"] for h in straight_hist]
    for a, b in zip(straight.parameters(), resumed.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_quick_preset_is_smaller_than_the_defaults():
    quick, full = ppo.PPOConfig.quick(), ppo.PPOConfig()
    assert quick.updates < full.updates and quick != full
    assert ppo.PPOConfig.quick(updates=3).updates == 3
