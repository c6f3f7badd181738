"""camp.rl: every piece on hand-computed cases (the KL pieces are in test_rlhf.py, beside their use)."""

import math

import pytest
import torch

from camp import rl


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
