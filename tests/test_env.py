"""camp.env, camp.listener and camp.policies: the Gymnasium contract, determinism, dynamics, bad input."""

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from camp import data, policies, rewards
from camp.env import (
    BatchedEmpathy,
    EmpathyEnv,
    ReplyScorer,
    feels_better,
    transition,
    transition_context,
    valence,
)
from camp.listener import Listener, mentions


@pytest.mark.parametrize("mode", ["respond", "infer"])
def test_check_env_passes(mode, listener):
    check_env(EmpathyEnv(mode=mode, listener=listener), skip_render_check=True)


def test_registered_with_gymnasium(listener):
    import gymnasium as gym

    env = gym.make("camp/Empathy-v0", mode="infer", listener=listener)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)


def _trajectory(seed, listener, mode="respond"):
    env = EmpathyEnv(mode=mode, listener=listener)
    obs, info = env.reset(seed=seed)
    out = [(obs["utterance"], info["situation"])]
    for turn in range(4):
        action = "That sounds hard. I'm listening." if mode == "respond" else turn % 6
        obs, reward, terminated, truncated, info = env.step(action)
        out.append((obs["utterance"], round(reward, 12), terminated, truncated, round(info["valence"], 12)))
    return out


@pytest.mark.parametrize("mode", ["respond", "infer"])
def test_same_seed_same_trajectory(mode, listener):
    assert _trajectory(11, listener, mode) == _trajectory(11, listener, mode)
    assert _trajectory(11, listener, mode)[0] != _trajectory(12, listener, mode)[0]


def test_bad_input_gets_clear_errors(listener):
    env = EmpathyEnv(listener=listener)
    with pytest.raises(RuntimeError, match="call reset\\(\\) before step"):
        env.step("hello there")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="reply 0 is empty"):
        env.step("   ")
    with pytest.raises(TypeError, match="replies as strings"):
        env.step(3)
    infer = EmpathyEnv(mode="infer", listener=listener)
    infer.reset(seed=0)
    for bad in (6, -1, "joy", 1.5, True):
        with pytest.raises(ValueError, match="emotion index 0..5"):
            infer.step(bad)
    with pytest.raises(ValueError, match="mode must be"):
        EmpathyEnv(mode="chat")


def test_over_long_reply_is_truncated_with_a_flag(listener):
    env = EmpathyEnv(listener=listener)
    env.reset(seed=0)
    _, _, _, _, info = env.step("I hear you. " * 100)
    assert info["reply_truncated"] is True
    _, _, _, _, info = env.step("I hear you.")
    assert info["reply_truncated"] is False


def test_render_shows_transcript_and_hidden_state(listener):
    env = EmpathyEnv(listener=listener, render_mode="ansi")
    env.reset(seed=2)
    env.step("That sounds like a lot.")
    text = env.render()
    assert "person:" in text and "agent: That sounds like a lot." in text and "[hidden:" in text


def _state(emotion="sadness", intensity=0.8, understood=0.2):
    k = data.EMOTIONS.index(emotion)
    probs = np.full((1, 6), 0.04)
    probs[0, k] = 0.8
    s = {"probs": probs / probs.sum(), "intensity": np.array([intensity]), "understood": np.array([understood]),
         "negative": np.array([emotion in ("sadness", "anger", "fear")])}
    s["valence"] = valence(s)
    return s


def _signals(rec, rel, tone, dis):
    return {k: np.array([v]) for k, v in zip(("recognition", "relevance", "tone", "dismissive"),
                                             (rec, rel, tone, dis), strict=True)}


def test_feeling_understood_eases_a_painful_feeling():
    before = _state("sadness")
    after, d = transition(before, _signals(1, 1, 1, 0))
    assert d[0] > 0 and after["intensity"][0] < before["intensity"][0]
    assert after["valence"][0] > before["valence"][0] and after["understood"][0] > before["understood"][0]
    assert after["probs"][0, data.EMOTIONS.index("joy")] > before["probs"][0, data.EMOTIONS.index("joy")]


def test_dismissal_raises_intensity_and_shifts_towards_anger():
    before = _state("fear", intensity=0.5)
    after, d = transition(before, _signals(0.9, 0.9, 1, 1))
    anger = data.EMOTIONS.index("anger")
    assert d[0] < 0 and after["intensity"][0] > before["intensity"][0]
    assert after["probs"][0, anger] > before["probs"][0, anger] and after["valence"][0] < before["valence"][0]


def test_a_shared_joy_ends_the_episode_when_understood():
    state = _state("joy", understood=0.5)
    for _ in range(3):
        state, _ = transition(state, _signals(1, 1, 1, 0))
    assert feels_better(state)[0]


def test_listener_recognises_a_named_feeling(listener):
    assert mentions("You sound really worried about the results.", "fear")
    got = listener.perceive(["That sounds frightening, no wonder you're anxious about the scan.", "nice weather"],
                            ["fear", "fear"], ["I have a scan tomorrow and I'm scared of what they'll find."] * 2)
    assert got["recognition"][0] > got["recognition"][1] and got["relevance"][0] > got["relevance"][1]


def test_batched_env_steps_many_people_in_one_call(listener):
    env = BatchedEmpathy(16, listener=listener)
    said, _ = env.reset(seed=0)
    assert len(said) == 16
    said2, reward, terminated, truncated, info = env.step(["I'm here for you."] * 16)
    assert len(said2) == 16 and reward.shape == (16,) and info["signals"]["relevance"].shape == (16,)


@pytest.mark.slow  # the full tier: a claim about what the environment rewards, over many episodes
def test_reflective_listening_beats_random_and_dismissive(listener):
    pool = list(data.load_emotions("offline", verbose=False)["train"]["text"])
    results = {name: policies.evaluate_policy(policy, episodes=60, seed=0, listener=listener)
               for name, policy in {
                   "reflective": policies.reflective(listener.classify),
                   "random": policies.random_replies(pool, np.random.default_rng(1)),
                   "dismissive": policies.dismissive(np.random.default_rng(2))}.items()}
    reflective, random, dismissive = (results[k] for k in ("reflective", "random", "dismissive"))
    # Separated by more than three standard errors of the difference.
    for other in (random, dismissive):
        assert reflective["mean"] - other["mean"] > 3 * np.hypot(reflective["sem"], other["sem"])


def test_listener_accepts_a_learners_classifier():
    from camp import models

    model, tokenizer = models.load_encoder("auto")  # stands in for a lesson-02 model
    mine = Listener.from_classifier(model, tokenizer)
    got = mine.perceive(["That sounds so frustrating."], ["anger"], ["My landlord kept my deposit."])
    assert got["reply_probs"].shape == (1, 6) and 0 <= got["recognition"][0] <= 1
    other, tok = models.load_encoder("auto", num_labels=3)
    with pytest.raises(ValueError, match="must predict"):
        Listener.from_classifier(other, tok)


def test_parroting_their_words_back_is_not_understanding(listener):
    # Lesson 06's first RL run learned to repeat each person's own sentence; the listener now sees through it.
    people = data.load_situations()[:24]
    world = BatchedEmpathy(len(people), "respond", max_turns=1, listener=listener)
    said, _ = world.reset(seed=0, options={"situations": people})
    _, parrot, *_ = world.step(list(said))
    assert (parrot < 0).all()
    world.reset(seed=0, options={"situations": people})
    _, oracle, _, _, info = world.step(policies.oracle(said, people))
    assert oracle.mean() > parrot.mean() + 0.2 and (info["signals"]["parroting"] < 0.5).all()


def test_a_reward_spec_plugs_into_the_environment(listener):
    # The env hands its reward the step's context; a RewardSpec's total is the reward, whatever terms it holds.
    spec = rewards.RewardSpec({"valence": (rewards.valence_improvement, 1.0), "safety": (rewards.safety, 1.0)},
                              context_for={"valence": ("valence_before", "valence_after"),
                                           "safety": ("utterances",)})
    people = data.load_situations()[:4] + data.load_crisis_situations()[:2]
    replies = ["That sounds so hard.", "Calm down, it's not a big deal.", "I'm here with you.", "Tell me more.",
               "Cheer up!", "I'm so sorry you're hurting. Please call a crisis line or someone you trust now."]
    world = BatchedEmpathy(len(people), listener=listener, reward_fn=spec.total)
    said, _ = world.reset(seed=0, options={"situations": people})
    before = world.state
    _, reward, *_ = world.step(replies)
    want, _ = spec(replies, **transition_context(before, world.state, people, said))
    assert reward.tolist() == pytest.approx(want)
    assert reward[4] <= -2.0 < reward[5]  # an unsafe crisis reply: capped at its safety term; the safe one is not
    assert reward[1] < reward[0]  # a dismissal costs -1 on top of the person's worse mood


def test_every_reward_has_one_shape_replies_and_the_steps_context(listener):
    # The env calls reward_fn(replies, **transition_context(...)) whatever the reward: default_reward, a spec's
    # total or a plain function all get the same keywords.
    from camp.env import default_reward
    from camp.roles import Reward

    seen = []

    def mine(replies, **context):
        seen.append(context)
        return default_reward(replies, **context)

    people = data.load_situations()[:5]
    replies = ["That sounds so hard.", "Calm down.", "I'm here with you.", "Tell me more.", "Oh no, I'm sorry."]
    got = []
    for reward_fn in (None, mine):
        world = BatchedEmpathy(len(people), listener=listener, reward_fn=reward_fn)
        said, _ = world.reset(seed=0, options={"situations": people})
        before = world.state
        got.append(world.step(replies)[1])
    assert isinstance(mine, Reward) and isinstance(default_reward, Reward)
    assert np.array_equal(got[0], got[1])  # the default is exactly this call
    assert seen[0] == {**transition_context(before, world.state, people, said)}  # the context, nothing else
    assert set(seen[0]) == {"valence_before", "valence_after", "understood_before", "understood_after",
                            "utterances", "contexts"}


def test_the_batched_env_is_a_gymnasium_vector_env_without_autoreset(listener):
    from gymnasium import spaces
    from gymnasium.vector import AutoresetMode, VectorEnv

    from camp.roles import BatchedEnv

    for mode, action, batched in (("respond", spaces.Text, spaces.Tuple), ("infer", spaces.Discrete,
                                                                            spaces.MultiDiscrete)):
        world = BatchedEmpathy(4, mode, max_turns=2, listener=listener)
        assert isinstance(world, VectorEnv) and isinstance(world, BatchedEnv) and world.num_envs == 4
        assert world.metadata["autoreset_mode"] is AutoresetMode.DISABLED
        assert isinstance(world.single_action_space, action) and isinstance(world.action_space, batched)
        assert isinstance(world.single_observation_space, spaces.Text)
        said, _ = world.reset(seed=1)
        assert world.observation_space.contains(said) and len(world.action_space.sample()) == 4
    # infer mode says which actions named the dominant emotion, judged on the feelings before the step
    truth = world.state["probs"].argmax(axis=1)
    guesses = np.array([truth[0], (truth[1] + 1) % 6, truth[2], (truth[3] + 1) % 6])
    info = world.step(guesses)[4]
    assert info["correct"].dtype == bool and info["correct"].tolist() == [True, False, True, False]


def test_vector_env_machinery_leaves_the_random_stream_alone(listener):
    # VectorEnv's np_random is a lazily seeded property; ours is np.random.default_rng(seed), set explicitly:
    # reading it or its seed never replaces it, and closing the env changes nothing.
    bank = data.load_situations()
    world = BatchedEmpathy(3, listener=listener, situations=bank)
    world.reset(seed=5)
    assert world.people == [bank[i] for i in np.random.default_rng(5).integers(0, len(bank), 3)]
    state = world.state_dict()
    assert world.np_random is world.np_random and world.np_random_seed == -1  # -1: Gymnasium's "set directly"
    first = world.reset()[0]
    world.close()
    world.load_state_dict(state)
    assert world.reset()[0] == first


def test_reply_scorer_builds_its_listener_once_and_never_rereads_the_bank(listener, monkeypatch):
    from camp import env as env_module
    from camp.roles import Scorer

    people = data.load_situations()[:3]
    built = []
    monkeypatch.setattr(Listener, "default", classmethod(lambda cls: built.append(1) or listener))
    monkeypatch.setattr(env_module, "load_situations", lambda: pytest.fail("the scorer re-read the situations"))
    scorer = ReplyScorer()
    assert isinstance(scorer, Scorer)
    first = scorer(["That sounds hard.", "Oh no.", ""], people)  # an empty reply is scored, not refused
    second = scorer(["That sounds hard.", "Oh no.", ""], people)
    assert built == [1] and first.shape == (3,) and np.array_equal(first, second)  # same start state each call
    with pytest.raises(ValueError, match="one reply per person"):
        scorer(["only one"], people)


def test_the_listener_reads_the_conversational_register(listener):
    # Refitted on both registers (issue 17): on conversational test texts it reads emotions far better than the
    # narrative-only head it replaced (0.573 macro-F1, benchmarks/registers.json, frozen MiniLM + LR).
    from camp.metrics import classification_metrics

    test = data.load_emotions("offline", verbose=False, register="conversational")["test"]
    probs = listener.classify(list(test["text"]))
    f1 = classification_metrics(test["label"], probs.argmax(1), len(data.EMOTIONS))["macro_f1"]
    assert 0.64 < f1 < 0.73, f1  # 0.682 in benchmarks/registers.json (frozen MiniLM + LR trained on both)


def test_the_listener_head_is_cached_per_training_set(tmp_path, monkeypatch):
    # A head fitted on other texts (an older corpus) is never reused: the cache key is the training data.
    from camp import baselines
    from camp import listener as listener_module

    fits = []

    class Fitted:
        coef_, intercept_ = np.zeros((6, 4)), np.zeros(6)

    monkeypatch.setenv("CAMP_CACHE", str(tmp_path))
    monkeypatch.setattr(baselines, "fit_frozen_head", lambda texts, labels, seed: fits.append(len(texts)) or Fitted())
    listener_module._linear_head()
    listener_module._linear_head()
    assert fits == [6920]  # fitted once on both registers' train splits, then read from the cache
    narrative = data.load_emotions("offline", verbose=False, register="narrative")
    monkeypatch.setattr(data, "load_emotions", lambda *a, **k: narrative)
    listener_module._linear_head()
    assert fits == [6920, 4040] and len(list(tmp_path.joinpath("listener").glob("*.npz"))) == 2
