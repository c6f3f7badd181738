"""camp.rl_envs: the two batched environments of lesson 05 follow camp.roles.BatchedEnv and reward log P."""

import numpy as np
import pytest

from camp import rl_envs
from camp.roles import BatchedEnv


def test_emotion_guessing_rewards_are_log_probabilities_of_the_persons_feeling():
    labels = np.array([0, 1, 2, 3, 4, 5])
    world = rl_envs.EmotionGuessing(np.eye(6, dtype=np.float32), labels, n=500, seed=1)
    assert isinstance(world, BatchedEnv)
    obs, _ = world.reset()
    truth = obs.argmax(axis=1)  # the identity features reveal each text's label
    _, reward, done, truncated, info = world.step(truth)
    assert not truncated.any()
    assert done.all() and info["correct"].all()  # the label is always the dominant emotion
    assert np.allclose(reward, np.log(world.probs[np.arange(500), truth]))
    assert reward.mean() > np.log(0.7)  # about 80 % on the true emotion
    _, wrong, _, _, info = world.step((truth + 1) % 6)
    assert not info["correct"].any() and wrong.max() < np.log(0.2) < reward.min()
    guesser = rl_envs.EmotionGuessing(np.eye(6), labels, n=4, correctness=True)
    guesser.reset()
    assert sorted(set(guesser.step(guesser.labels[guesser.idx])[1])) == [1.0]


def test_emotion_guessing_refuses_mismatched_data():
    with pytest.raises(ValueError, match="one label per row"):
        rl_envs.EmotionGuessing(np.zeros((3, 4)), [0, 1])
    with pytest.raises(ValueError, match="0..5"):
        rl_envs.EmotionGuessing(np.zeros((2, 4)), [0, 9])


def test_infer_dialogues_follow_the_protocol_and_reward_the_current_feeling(monkeypatch):
    from camp import models

    # Stand-in embeddings: the protocol is under test here, not MiniLM (lesson 05 runs the real thing).
    def fake_embed(texts):
        return np.stack([np.random.default_rng(len(t) * 7919 + ord(t[0])).standard_normal(384) for t in texts])

    monkeypatch.setattr(models, "cached_embed", fake_embed)
    world = rl_envs.InferDialogues(n=32, max_turns=3)
    assert isinstance(world, BatchedEnv)
    obs, _ = world.reset(seed=0)
    assert obs.shape == (32, 384) and world.max_turns == 3
    truth = world.world.state["probs"].argmax(axis=1)
    probs = world.world.state["probs"].copy()
    _, reward, terminated, truncated, info = world.step(truth)
    assert info["correct"].all()
    assert np.allclose(reward, np.log(probs[np.arange(32), truth]))  # log P under the feeling *before* the reply
    assert terminated.dtype == bool and terminated.shape == truncated.shape == (32,)
    state = world.state_dict()
    first = world.reset()[0]
    world.load_state_dict(state)
    assert np.array_equal(world.reset()[0], first)  # the random state round-trips, so training resumes exactly
    assert not np.array_equal(world.reset()[0], first)  # and the next draw is a different set of people
    assert np.array_equal(world.reset(seed=0)[0], obs)  # a seed restarts the same people


def test_both_are_gymnasium_vector_envs_without_autoreset(monkeypatch):
    from gymnasium import spaces
    from gymnasium.vector import AutoresetMode, VectorEnv

    from camp import models

    monkeypatch.setattr(models, "cached_embed", lambda texts: np.zeros((len(texts), 384), np.float32))
    guessing = rl_envs.EmotionGuessing(np.eye(6, dtype=np.float32), np.arange(6), n=5)
    dialogues = rl_envs.InferDialogues(n=5, max_turns=2)
    for world, dim in ((guessing, 6), (dialogues, 384)):
        assert isinstance(world, VectorEnv) and world.metadata["autoreset_mode"] is AutoresetMode.DISABLED
        assert world.single_observation_space.shape == (dim,) and world.single_observation_space.dtype == np.float32
        assert world.single_action_space == spaces.Discrete(6) and world.action_space == spaces.MultiDiscrete([6] * 5)
        obs, _ = world.reset(seed=0)
        assert world.observation_space.shape == (5, dim) and world.observation_space.contains(obs)
    assert dialogues.np_random is dialogues.world.np_random  # one random stream, the world's
    before = dialogues.state_dict()
    assert dialogues.np_random_seed == -1  # set directly, never lazily seeded
    dialogues.close()  # and closing draws nothing either
    assert dialogues.state_dict() == before
