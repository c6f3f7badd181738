"""camp.rl and camp.rl_envs: every piece on hand-computed cases, learning on a bandit, config errors, resume."""

import doctest
import math

import numpy as np
import pytest
import torch

from camp import rl, rl_envs


def test_doctests_pass():
    result = doctest.testmod(rl)
    assert result.attempted >= 8 and result.failed == 0


def test_masked_mean_ignores_padding_and_works_per_row():
    x = torch.tensor([[1.0, 3.0], [5.0, 7.0]])
    mask = torch.tensor([[1, 0], [1, 1]])
    assert rl.masked_mean(x, mask).item() == pytest.approx((1 + 5 + 7) / 3)
    assert rl.masked_mean(x, mask, dim=1).tolist() == [1.0, 6.0]  # row 0 keeps only the 1
    assert rl.masked_mean(x).item() == 4.0


def test_whiten_uses_only_real_steps_and_leaves_padding_alone():
    x = torch.tensor([1.0, 3.0, 100.0])
    out = rl.whiten(x, torch.tensor([1, 1, 0]))
    # mean 2 and unbiased std sqrt(2) over the first two; the padded 100 neither counts nor changes
    assert out.tolist() == pytest.approx([-1 / math.sqrt(2), 1 / math.sqrt(2), 100.0], abs=1e-6)
    assert rl.whiten(torch.tensor([1.0, 3.0]), shift_mean=False).tolist() == pytest.approx(
        [2 - 1 / math.sqrt(2), 2 + 1 / math.sqrt(2)], abs=1e-6)  # rescaled around the old mean


def test_discounted_returns_restart_after_done():
    r = torch.tensor([1.0, 1.0, 1.0])
    assert rl.discounted_returns(r, 0.5).tolist() == [1.75, 1.5, 1.0]
    # the episode ends at step 1, so step 0 sees 1 + 0.5 * 1 and step 2 starts afresh
    assert rl.discounted_returns(r, 0.5, torch.tensor([0, 1, 0])).tolist() == [1.5, 1.0, 1.0]


def test_gae_hand_computed_with_bootstrap_and_done():
    r, v = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.5, 0.2]])
    adv, ret = rl.compute_gae(r, v, gamma=0.9, lam=0.5, last_values=torch.tensor([1.0]))
    # delta_1 = 0 + 0.9 * 1.0 - 0.2 = 0.7;  delta_0 = 1 + 0.9 * 0.2 - 0.5 = 0.68;  A_0 = 0.68 + 0.45 * 0.7
    assert adv.tolist()[0] == pytest.approx([0.995, 0.7])
    assert ret.tolist()[0] == pytest.approx([1.495, 0.9])
    adv, _ = rl.compute_gae(r, v, gamma=0.9, lam=0.5, dones=torch.tensor([[1, 0]]), last_values=torch.tensor([1.0]))
    assert adv.tolist()[0] == pytest.approx([0.5, 0.7])  # done at step 0: no bootstrap, no credit from step 1


def test_gae_limits_are_td_and_monte_carlo():
    gen = torch.Generator().manual_seed(0)
    r, v = torch.randn(3, 5, generator=gen), torch.randn(3, 5, generator=gen)
    mc, _ = rl.compute_gae(r, v, gamma=0.9, lam=1.0)
    assert torch.allclose(mc, rl.discounted_returns(r, 0.9) - v, atol=1e-6)  # lambda 1: G_t - V(s_t)
    td, _ = rl.compute_gae(r, v, gamma=0.9, lam=0.0)
    next_v = torch.cat([v[:, 1:], torch.zeros(3, 1)], dim=1)
    assert torch.allclose(td, r + 0.9 * next_v - v, atol=1e-6)  # lambda 0: the one-step TD error
    with pytest.raises(ValueError, match="one shape"):
        rl.compute_gae(r, v[:, :4], 0.9, 0.9)


def test_reinforce_loss_value_and_gradient():
    logp = torch.tensor([-1.0, -2.0], requires_grad=True)
    weights = torch.tensor([1.0, -1.0], requires_grad=True)
    loss = rl.reinforce_loss(logp, weights)
    loss.backward()
    assert loss.item() == -0.5  # -(-1 * 1 + -2 * -1) / 2
    assert logp.grad.tolist() == [-0.5, 0.5]  # pushes up the good action, down the bad one
    assert weights.grad is None  # the weights are constants
    assert rl.reinforce_loss(logp, weights, torch.tensor([1, 0])).item() == 1.0  # only the first counts


def test_ppo_clip_loss_clips_only_in_the_direction_of_the_advantage():
    old = torch.log(torch.tensor([0.2, 0.2]))
    new = (old + math.log(1.5)).requires_grad_()  # ratio 1.5 for both
    loss, stats = rl.ppo_clip_loss(new, old, torch.tensor([1.0, 1.0]), clip_range=0.2)
    assert loss.item() == pytest.approx(-1.2)  # min(1.5, 1.2) * 1: the gain is capped at 1 + eps
    assert stats["clipfrac"] == 1.0
    assert stats["approx_kl"] == pytest.approx(0.5 - math.log(1.5))  # k3: (r - 1) - log r
    loss.backward()
    assert new.grad.tolist() == [0.0, 0.0]  # clipped: no gradient pushes the ratio further
    loss, stats = rl.ppo_clip_loss(new, old, torch.tensor([-1.0, -1.0]), clip_range=0.2)
    assert loss.item() == pytest.approx(1.5)  # a bad action made likelier is not clipped: the full penalty
    assert stats["clipfrac"] == 0.0
    same, _ = rl.ppo_clip_loss(old, old, torch.tensor([2.0, -4.0]), clip_range=0.2)
    assert same.item() == pytest.approx(1.0)  # ratio 1: -mean(A)


def test_ppo_clip_loss_refuses_bad_input():
    lp = torch.zeros(2)
    with pytest.raises(ValueError, match="clip_range must be positive"):
        rl.ppo_clip_loss(lp, lp, torch.ones(2), clip_range=-0.1)
    with pytest.raises(ValueError, match="NaN"):
        rl.ppo_clip_loss(lp, lp, torch.tensor([1.0, float("nan")]), clip_range=0.2)


def test_value_loss_plain_and_clipped():
    assert rl.value_loss(torch.tensor([1.0, 3.0]), torch.zeros(2)).item() == 2.5  # 0.5 * (1 + 9) / 2
    # V moved from 0 to 1.8 towards a return of 2; clipped to 0.5 it is 1.5 away: the pessimistic max wins
    got = rl.value_loss(torch.tensor([1.8]), torch.tensor([2.0]), torch.tensor([0.0]), clip_range=0.5)
    assert got.item() == pytest.approx(0.5 * 1.5**2)
    with pytest.raises(ValueError, match="old_values"):
        rl.value_loss(torch.tensor([1.0]), torch.tensor([2.0]), clip_range=0.5)


def test_entropy_uniform_and_certain():
    assert rl.entropy(torch.zeros(2, 6)).item() == pytest.approx(math.log(6))
    assert rl.entropy(torch.tensor([[50.0, 0.0, 0.0]])).item() == pytest.approx(0.0, abs=1e-6)
    logits = torch.tensor([[0.0, 0.0], [50.0, 0.0]])
    assert rl.entropy(logits, torch.tensor([1, 0])).item() == pytest.approx(math.log(2))  # padding ignored


@pytest.mark.parametrize("kwargs, message", [
    ({"n_envs": 10, "n_minibatches": 4}, "multiple of n_minibatches"),
    ({"clip_range": -0.1}, "clip_range=-0.1 must be positive"),
    ({"gae_lambda": 1.5}, "must lie in"),
    ({"lr": 0}, "lr=0 must be positive"),
    ({"updates": 0}, "updates=0"),
])
def test_bad_config_is_refused_with_the_reason(kwargs, message):
    with pytest.raises(ValueError, match=message):
        rl.PPOConfig(**kwargs)


class Bandit:
    """Two arms behind a constant observation: arm 1 pays 1, arm 0 pays 0."""

    max_turns = 1

    def __init__(self, n=64, payout=(0.0, 1.0)):
        self.n, self.payout = n, np.array(payout)

    def seed(self, seed):
        self.rng = np.random.default_rng(seed)

    def reset(self):
        return np.ones((self.n, 3), dtype=np.float32)

    def step(self, actions):
        reward = self.payout[actions] + 0.1 * self.rng.standard_normal(self.n)
        return self.reset(), reward, np.ones(self.n, bool), {"correct": actions == 1}

    def state_dict(self):
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state):
        self.rng.bit_generator.state = state["rng"]


def test_ppo_learns_the_better_arm_of_a_bandit():
    cfg = rl.PPOConfig(updates=15, n_envs=64, lr=0.05, progress=False)
    policy, history = rl.train_ppo(rl.ActorCritic(3, 2, hidden=0), Bandit(), cfg)
    assert history[0]["reward/mean"] < 0.7  # starts near 0.5: both arms equally likely
    assert history[-1]["reward/mean"] > 0.9  # and learns to pull arm 1
    assert all(math.isfinite(h["loss/policy"]) for h in history)


@pytest.mark.parametrize("baseline", ["none", "value", "whitened"])
def test_reinforce_learns_the_bandit_and_reports_gradient_variance(baseline):
    cfg = rl.PPOConfig(updates=40, n_envs=64, lr=0.05, progress=False)
    _, history = rl.train_reinforce(rl.ActorCritic(3, 2, hidden=0), Bandit(), cfg, baseline=baseline)
    assert history[-1]["reward/mean"] > 0.8
    assert all(h["grad/variance"] >= 0 for h in history)


def test_nan_rewards_stop_training_before_any_update():
    policy = rl.ActorCritic(3, 2, hidden=0)
    before = [p.detach().clone() for p in policy.parameters()]
    cfg = rl.PPOConfig(updates=3, n_envs=8, n_minibatches=2, progress=False)
    with pytest.raises(FloatingPointError, match="not finite"):
        rl.train_ppo(policy, Bandit(n=8, payout=(0.0, float("nan"))), cfg)
    assert all(torch.equal(a, b) for a, b in zip(before, policy.parameters(), strict=True))


def test_env_size_must_match_minibatches():
    with pytest.raises(ValueError, match="multiple of n_minibatches"):
        rl.train_ppo(rl.ActorCritic(3, 2, hidden=0), Bandit(n=10), rl.PPOConfig(n_envs=8, progress=False))


def test_interrupted_run_resumes_exactly(tmp_path):
    def run(cfg, resume=False, callback=None):
        torch.manual_seed(123)
        return rl.train_ppo(rl.ActorCritic(3, 2, hidden=8), Bandit(n=16), cfg, resume=resume, callback=callback)

    kwargs = {"updates": 6, "n_envs": 16, "n_minibatches": 2, "lr": 0.01, "progress": False}
    straight, straight_hist = run(rl.PPOConfig(**kwargs))

    def crash(update, _record):
        if update == 5:
            raise KeyboardInterrupt  # killed after the checkpoint at update 3 and two more updates

    cfg = rl.PPOConfig(**kwargs, checkpoint_dir=str(tmp_path), checkpoint_every=3)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, callback=crash)
    resumed, resumed_hist = run(cfg, resume=True)
    for a, b in zip(straight.parameters(), resumed.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    assert [h["reward/mean"] for h in resumed_hist] == [h["reward/mean"] for h in straight_hist]


def test_resume_without_a_checkpoint_dir_is_refused():
    with pytest.raises(ValueError, match="checkpoint_dir"):
        rl.train_ppo(rl.ActorCritic(3, 2, hidden=0), Bandit(), rl.PPOConfig(progress=False), resume=True)


def test_emotion_guessing_rewards_are_log_probabilities_of_the_persons_feeling():
    labels = np.array([0, 1, 2, 3, 4, 5])
    world = rl_envs.EmotionGuessing(np.eye(6, dtype=np.float32), labels, n=500, seed=1)
    obs = world.reset()
    truth = obs.argmax(axis=1)  # the identity features reveal each text's label
    _, reward, done, info = world.step(truth)
    assert done.all() and info["correct"].all()  # the label is always the dominant emotion
    assert np.allclose(reward, np.log(world.probs[np.arange(500), truth]))
    assert reward.mean() > np.log(0.7)  # about 80 % on the true emotion
    _, wrong, _, info = world.step((truth + 1) % 6)
    assert not info["correct"].any() and wrong.max() < np.log(0.2) < reward.min()
    guesser = rl_envs.EmotionGuessing(np.eye(6), labels, n=4, correctness=True)
    guesser.reset()
    assert sorted(set(guesser.step(guesser.labels[guesser.idx])[1])) == [1.0]


def test_emotion_guessing_refuses_mismatched_data():
    with pytest.raises(ValueError, match="one label per row"):
        rl_envs.EmotionGuessing(np.zeros((3, 4)), [0, 1])
    with pytest.raises(ValueError, match="0..5"):
        rl_envs.EmotionGuessing(np.zeros((2, 4)), [0, 9])


def test_ppo_learns_emotion_guessing_on_separable_features():
    # Noisy one-hot features: a linear head can learn them, but only from the reward signal.
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 6, 600)
    features = np.eye(6, dtype=np.float32)[labels] + 0.3 * rng.standard_normal((600, 6)).astype(np.float32)
    world = rl_envs.EmotionGuessing(features[:500], labels[:500], n=128)
    cfg = rl.PPOConfig(updates=25, n_envs=128, lr=0.03, eval_every=25, progress=False)
    policy, history = rl.train_ppo(rl.ActorCritic(6, 6, hidden=0), world, cfg, eval_data=(features[500:], labels[500:]))
    assert history[0]["reward/correct"] < 0.35  # starts near chance, 1/6
    assert history[-1]["eval/accuracy"] > 0.9


def test_supervised_reference_learns_and_reports_on_the_same_axis():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 6, 300)
    features = np.eye(6, dtype=np.float32)[labels] + 0.3 * rng.standard_normal((300, 6)).astype(np.float32)
    _, history = rl.train_supervised(rl.ActorCritic(6, 6, hidden=0), features, labels, samples=2560,
                                     batch_size=128, lr=0.03, eval_data=(features, labels))
    assert history[-1]["samples"] == 2560 and history[-1]["eval/accuracy"] > 0.9


def test_infer_dialogues_follow_the_protocol_and_reward_the_current_feeling(monkeypatch):
    from camp import models

    # Stand-in embeddings: the protocol is under test here, not MiniLM (lesson 05 runs the real thing).
    def fake_embed(texts):
        return np.stack([np.random.default_rng(len(t) * 7919 + ord(t[0])).standard_normal(384) for t in texts])

    monkeypatch.setattr(models, "cached_embed", fake_embed)
    world = rl_envs.InferDialogues(n=32, max_turns=3)
    world.seed(0)
    obs = world.reset()
    assert obs.shape == (32, 384) and world.max_turns == 3
    truth = world.world.state["probs"].argmax(axis=1)
    probs = world.world.state["probs"].copy()
    _, reward, terminated, info = world.step(truth)
    assert info["correct"].all()
    assert np.allclose(reward, np.log(probs[np.arange(32), truth]))  # log P under the feeling *before* the reply
    assert terminated.dtype == bool and terminated.shape == (32,)
    state = world.state_dict()
    first = world.reset()
    world.load_state_dict(state)
    assert np.array_equal(world.reset(), first)  # the random state round-trips, so training resumes exactly
    assert not np.array_equal(world.reset(), first)  # and the next draw is a different set of people
