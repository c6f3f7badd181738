"""The virtual empathy environment: a simulated person whose feelings react to what the agent says.

Introduced in lesson 03. `EmpathyEnv` is one person behind the Gymnasium API ("camp/Empathy-v0"); the
`BatchedEmpathy` Gymnasium `VectorEnv` runs many at once, one listener call for all their replies, as RL training
needs. Both share the pure dynamics in `transition` and one reward shape (`camp.roles.Reward`). `ReplyScorer`
makes the environment a scorer (`camp.roles.Scorer`), which lessons 06-08 train and evaluate against.
"""

from __future__ import annotations

import functools
import string
from collections.abc import Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from camp import rewards
from camp.data import EMOTIONS, Situation, load_situations
from camp.roles import Reward
from camp.text import is_crisis, is_safe_crisis_reply

VALENCE = np.array([-0.8, 0.8, 0.7, -0.7, -0.7, 0.0])  # sadness joy love anger fear surprise
NEGATIVE = np.array([True, False, False, True, True, False])
RELIEF, ANGER, SADNESS = EMOTIONS.index("joy"), EMOTIONS.index("anger"), EMOTIONS.index("sadness")
CHARSET = string.ascii_letters + string.digits + string.punctuation + " \n" + "’‘“”—–…éèáàçöüñ£€"
MAX_REPLY_CHARS = 400
MAX_TEXT = 4000


def clean(text: str, limit: int = MAX_TEXT) -> str:
    """Keep observations inside the observation space: unknown characters become '?', long text is cut."""
    return "".join(c if c in CHARSET else "?" for c in text)[-limit:]


def understood_score(signals: dict) -> np.ndarray:
    """How understood each reply made the person feel, in [0, 1]; a dismissive reply scores 0, and the share of
    it that only repeats their own words counts for nothing."""
    u = 0.4 * signals["recognition"] + 0.35 * signals["relevance"] + 0.25 * signals["tone"]
    return np.clip(u, 0.0, 1.0) * (1.0 - signals["dismissive"]) * (1.0 - signals.get("parroting", 0.0))


def crisis_perception(signals: dict, crisis: np.ndarray, safe: Sequence[bool]) -> dict:
    """How a person in crisis perceives replies: only a safe crisis reply (care, a pointer to human help, no
    advice, nothing harmful; `camp.text.is_safe_crisis_reply`) makes them feel heard; anything else, however
    kind it sounds to the listener model, brushes them off. Rows where `crisis` is False are left as they are.
    """
    crisis, safe = np.asarray(crisis, dtype=bool), np.asarray(safe, dtype=bool)
    out = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in signals.items()}
    heard, missed = crisis & safe, crisis & ~safe
    for key in ("recognition", "relevance", "tone"):
        out[key] = np.where(heard, 1.0, np.where(missed, 0.0, out[key]))
    out["dismissive"] = np.where(missed, 1.0, np.where(heard, 0.0, out["dismissive"]))
    if "parroting" in out:
        out["parroting"] = np.where(crisis, 0.0, out["parroting"])
    return out


def transition(state: dict, signals: dict) -> tuple[dict, np.ndarray]:
    """The person's next state given how they perceived the replies (arrays over a batch of N people).

    State: `probs` (N, 6) emotion distribution, `intensity` (N,) in [0.05, 1], `understood` (N,) in [0, 1],
    `negative` (N,) whether the situation's emotion is a painful one. Returns (new state, d) with d > 0 when
    the person feels more understood than before.

    Understood (d > 0): a painful feeling's intensity falls and its mass shifts towards relief; a happy feeling
    grows. Dismissed: intensity rises and the mass shifts towards anger (painful) or sadness (happy, deflated).
    """
    d = understood_score(signals) - 0.45  # (N,)
    dis = signals["dismissive"]
    up, down = np.maximum(d, 0.0), np.maximum(-d, 0.0)
    neg = state["negative"]
    intensity = np.where(neg, state["intensity"] - 0.6 * up + 0.4 * down + 0.25 * dis,
                         state["intensity"] + 0.2 * up - 0.3 * down - 0.2 * dis)
    target = np.zeros_like(state["probs"])
    target[np.arange(len(d)), np.where(neg, RELIEF, 0)] = np.where(neg, 1.0, 0.0)
    probs = state["probs"] * (1 - np.where(neg, 0.5 * up, 0.0))[:, None] + (np.where(neg, 0.5 * up, 0.0))[:, None] * target
    toward = np.zeros_like(probs)
    toward[np.arange(len(d)), np.where(neg, ANGER, SADNESS)] = 1.0
    shift = (0.35 * dis + 0.1 * down)[:, None]
    probs = (1 - shift) * probs + shift * toward
    new = {"probs": probs / probs.sum(axis=1, keepdims=True),
           "intensity": np.clip(intensity, 0.05, 1.0),
           "understood": np.clip(state["understood"] + 0.6 * d - 0.3 * dis, 0.0, 1.0),
           "negative": neg}
    new["valence"] = valence(new)
    return new, d


def valence(state: dict) -> np.ndarray:
    """Valence in [-1, 1]: the emotion mix's pleasantness, stronger when the feeling is intense."""
    return (state["probs"] @ VALENCE) * (0.4 + 0.6 * state["intensity"])


def feels_better(state: dict) -> np.ndarray:
    """Episode end: a painful feeling has eased (valence >= 0, understood >= 0.6); a happy one was shared."""
    return np.where(state["negative"], (state["valence"] >= 0.0) & (state["understood"] >= 0.6),
                    state["understood"] >= 0.75)


def default_reward(replies: Sequence[str], *, valence_before: np.ndarray, valence_after: np.ndarray,
                   understood_before: np.ndarray, understood_after: np.ndarray, utterances: Sequence[str],
                   **context) -> np.ndarray:
    """Respond mode's default reward, a `camp.roles.Reward` of the step's `transition_context`: valence gain +
    0.5 x understood gain + the safety term (lesson 04); the rest of the context goes unused."""
    gain = (valence_after - valence_before) + 0.5 * (understood_after - understood_before)
    return gain + np.array(rewards.safety(replies, utterances=utterances))


def infer_reward(probs: np.ndarray, actions: np.ndarray, correctness: bool = False) -> np.ndarray:
    """Infer mode: R_t = log P(Y_t | X_t), P the person's actual emotion distribution and Y_t the emotion named
    (the article's reward, `rewards.emotion_logprob`), or 1/0 for naming the dominant emotion when `correctness`."""
    if correctness:
        return (probs.argmax(axis=1) == actions).astype(float)
    return np.asarray(rewards.emotion_logprob(probs=probs, targets=actions))


def transition_context(before: dict, after: dict, people: Sequence[Situation], utterances: Sequence[str]) -> dict:
    """The context every respond-mode reward gets about one step, by keyword: valence and understood before and
    after, `utterances` (what each person said, which the replies answer) and `contexts` (their situations)."""
    return {"valence_before": before["valence"], "valence_after": after["valence"],
            "understood_before": before["understood"], "understood_after": after["understood"],
            "utterances": list(utterances), "contexts": [p.description for p in people]}


def initial_distribution(emotion: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(N, 6) emotion distributions: 80 % on each person's emotion, 4 % on the others, plus a little
    individual colour (a Dirichlet draw worth 10 %), renormalised."""
    n = len(emotion)
    probs = np.full((n, 6), 0.04)
    probs[np.arange(n), emotion] = 0.8
    probs += rng.dirichlet(np.ones(6), n) * 0.1
    return probs / probs.sum(axis=1, keepdims=True)


def _batched(single: str) -> functools.cached_property:
    """A batched space, built on first use: batching a Text space copies it per person (0.15 s for 256 people)."""
    return functools.cached_property(lambda env: batch_space(getattr(env, single), env.num_envs))


class BatchedEmpathy(VectorEnv):
    """N simulated people stepped together: one listener call perceives all N replies.

    A Gymnasium `VectorEnv` (`camp.roles.BatchedEnv`) without autoreset: `reset(seed=, options={"situations":
    [...]})` -> (utterances, info) restarts all N; `step(actions)` -> (utterances, rewards, terminated, truncated,
    info). Observations are N strings; actions N replies (`Text(400)`), or N emotions (`Discrete(6)`) in infer
    mode, where `info["correct"]` says which named the dominant one. Randomness comes from `self.np_random`
    alone. `reward_fn` is a `camp.roles.Reward` (default `default_reward`; a `RewardSpec` as `spec.total`).
    """

    metadata = {"autoreset_mode": AutoresetMode.DISABLED}
    observation_space, action_space = _batched("single_observation_space"), _batched("single_action_space")

    def __init__(self, n: int, mode: str = "respond", max_turns: int = 6, listener=None,
                 reward_fn: Reward | None = None, situations: list[Situation] | None = None,
                 correctness: bool = False):
        if mode not in ("respond", "infer"):
            raise ValueError(f"mode must be 'respond' or 'infer', got {mode!r}")
        if n < 1 or max_turns < 1:
            raise ValueError("n and max_turns must be at least 1")
        self.num_envs, self.mode, self.max_turns, self.correctness = n, mode, max_turns, correctness
        self.single_observation_space = spaces.Text(MAX_TEXT, min_length=1, charset=CHARSET)
        self.single_action_space = spaces.Discrete(6) if mode == "infer" else \
            spaces.Text(MAX_REPLY_CHARS, min_length=1, charset=CHARSET)
        self.np_random = np.random.default_rng()  # replaced by reset(seed=...) or load_state_dict
        self.situations = situations or load_situations()
        self.reward_fn = reward_fn or default_reward
        self._listener = listener
        self.state: dict | None = None

    @property
    def listener(self):
        if self._listener is None:
            from camp.listener import Listener

            self._listener = Listener.default()
        return self._listener

    def state_dict(self) -> dict:
        return {"rng": self.np_random.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.np_random.bit_generator.state = state["rng"]

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[list[str], dict]:
        """Draw N people (or take `options["situations"]`); return what each says first, and an empty info."""
        if seed is not None:
            self.np_random = np.random.default_rng(seed)
        rng, n = self.np_random, self.num_envs
        self.people = list((options or {}).get("situations") or
                           [self.situations[i] for i in rng.integers(0, len(self.situations), n)])
        if len(self.people) != n:
            raise ValueError(f"expected {n} situations, got {len(self.people)}")
        idx = np.array([EMOTIONS.index(p.emotion) for p in self.people])
        self.state = {"probs": initial_distribution(idx, rng),
                      "intensity": np.array([p.intensity for p in self.people]),
                      "understood": np.full(n, 0.2), "negative": NEGATIVE[idx]}
        self.state["valence"] = valence(self.state)
        self.turn, self.utterances = 0, [p.opening for p in self.people]
        self.line_offset, self.lines_used = rng.integers(0, 3, n), np.zeros((n, 2), dtype=int)
        return list(self.utterances), {}

    def step(self, actions: Sequence) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, dict]:
        """Perceive N actions; return (utterances, rewards, terminated, truncated, info)."""
        if self.state is None:
            raise RuntimeError("call reset() before step()")
        if len(actions) != self.num_envs:
            raise ValueError(f"expected {self.num_envs} actions, got {len(actions)}")
        before = self.state
        if self.mode == "infer":
            acts = np.asarray(actions)
            correct = acts == before["probs"].argmax(axis=1)  # named the dominant emotion, before the step
            hit = correct.astype(float)
            signals = {"recognition": hit, "relevance": np.ones(self.num_envs), "tone": hit,
                       "dismissive": np.zeros(self.num_envs)}
            reward = infer_reward(before["probs"], acts, self.correctness)
            clipped, crisis = np.zeros(self.num_envs, dtype=bool), np.zeros(self.num_envs, dtype=bool)
        else:
            replies, signals, clipped, crisis = self._perceive(actions)
        self.state, d = transition(before, signals)
        if self.mode == "respond":
            context = transition_context(before, self.state, self.people, self.utterances)
            reward = np.asarray(self.reward_fn(replies, **context), dtype=float)
        self.turn += 1
        self.utterances = self._next_lines(d)
        terminated = feels_better(self.state)
        truncated = np.full(self.num_envs, self.turn >= self.max_turns) & ~terminated
        info = {"signals": {k: v for k, v in signals.items() if k != "reply_probs"}, "understood_delta": d,
                "reply_truncated": clipped, "crisis": crisis}
        if self.mode == "infer":
            info["correct"] = correct
        return list(self.utterances), reward, terminated, truncated, info

    def _perceive(self, actions: Sequence) -> tuple[list[str], dict, np.ndarray, np.ndarray]:
        """Respond mode: (replies cut to 400 characters, their signals, which were cut, which answer a crisis)."""
        replies, clipped = [], np.zeros(self.num_envs, dtype=bool)
        for i, reply in enumerate(actions):
            if not isinstance(reply, str):
                raise TypeError(f"respond mode takes replies as strings; action {i} is {type(reply).__name__}")
            if not reply.strip():
                raise ValueError(f"reply {i} is empty; say something")
            clipped[i] = len(reply) > MAX_REPLY_CHARS
            replies.append(reply[:MAX_REPLY_CHARS])
        contexts = [f"{p.description} {u}" for p, u in zip(self.people, self.utterances, strict=True)]
        signals = self.listener.perceive(replies, [p.emotion for p in self.people], contexts)
        crisis = np.array([is_crisis(u) for u in self.utterances])
        if crisis.any():
            signals = crisis_perception(signals, crisis, [is_safe_crisis_reply(r) for r in replies])
        return replies, signals, clipped, crisis

    def _next_lines(self, d: np.ndarray) -> list[str]:
        """Each person's next line: the next unused 'better' (d > 0) or 'worse' line of their situation."""
        said = []
        for i, (person, di) in enumerate(zip(self.people, d, strict=True)):
            kind = 0 if di > 0 else 1
            lines = (person.better, person.worse)[kind]
            said.append(lines[(self.line_offset[i] + self.lines_used[i, kind]) % len(lines)])
            self.lines_used[i, kind] += 1
        return said


class ReplyScorer:
    """The environment as a scorer (`camp.roles.Scorer`): the respond-mode reward of one reply to each person's
    opening line, from the same starting state every time. The listener is built once, on first use, so one
    scorer serves a whole training run: `ReplyScorer()(replies, people)` -> rewards, shape (N,)."""

    listener = BatchedEmpathy.listener  # the same lazy property: built on first use, then kept

    def __init__(self, listener=None, reward_fn: Reward | None = None, seed: int = 0):
        self._listener, self.reward_fn, self.seed = listener, reward_fn, seed

    def __call__(self, replies: Sequence[str], people: Sequence[Situation]) -> np.ndarray:
        if len(replies) != len(people):
            raise ValueError(f"{len(replies)} replies for {len(people)} people; give one reply per person")
        world = BatchedEmpathy(len(people), "respond", max_turns=1, listener=self.listener,
                               reward_fn=self.reward_fn, situations=list(people))
        world.reset(seed=self.seed, options={"situations": list(people)})
        replies = [r if r.strip() else "..." for r in replies]  # an empty reply is scored, not an error
        return world.step(replies)[1]


class EmpathyEnv(gym.Env):
    """A simulated person who has been through something and wants to talk.

    ## Description
    Each episode draws a situation from camp's situations bank (360 written situations, 60 per emotion). The
    person's hidden state is a distribution over the six emotions, an intensity, a valence and how understood
    they feel. They say something; the agent answers; a *listener* perceives the answer (does it recognise the
    emotion, is it relevant, is the tone fitting, is it dismissive); the state moves (see `transition`); and
    the person replies with a line that fits how they now feel.

    ## Action Space
    * `mode="respond"`: the reply, a `Text(400)` string. Longer replies are cut to 400 characters and
      `info["reply_truncated"]` is set.
    * `mode="infer"`: `Discrete(6)`, the emotion the agent names (index into `camp.data.EMOTIONS`).

    ## Observation Space
    A `Dict` with `utterance` (what the person just said), `history` (the dialogue so far, one line per turn,
    "person: ..." / "agent: ..."), `turn` and `embedding` (the MiniLM embedding of `utterance`, 384 floats,
    so a simple policy can be a linear layer on it).

    ## Rewards
    * respond: `reward_fn(replies, **transition_context(...))` (a `camp.roles.Reward`), default `default_reward`:
      valence gain + half the gain in feeling understood + `camp.rewards.safety`.
    * infer: the article's R_t = log P(Y_t | X_t) with P the person's actual emotion distribution (so it is
      highest for naming the true emotion), or `correctness=True` for a 1/0 signal.

    ## Starting State
    The situation's emotion holds about 80 % of the distribution, at the situation's intensity; understood 0.2.

    ## Safety
    When what the person just said is a crisis statement (`camp.text.is_crisis`; see
    `camp.data.load_crisis_situations`), only a safe crisis reply makes them feel heard (`crisis_perception`),
    the default reward gives anything else -2 (`rewards.safety`), and `info["crisis"]` is True.

    ## Episode End
    Terminated when the person feels better (`feels_better`); truncated after `max_turns` replies.

    ## Arguments
    `mode`, `max_turns` (default 6), `listener` (default `camp.listener.Listener.default()`; pass
    `Listener.from_classifier(model, tokenizer)` to use your lesson-02 model), `reward_fn`, `situations`,
    `correctness`, `render_mode` ("ansi" or "human"). `reset(options={"situation": s})` picks the situation.
    """

    metadata = {"render_modes": ["human", "ansi"]}

    def __init__(self, mode: str = "respond", max_turns: int = 6, listener=None, reward_fn: Reward | None = None,
                 situations: list[Situation] | None = None, correctness: bool = False,
                 render_mode: str | None = None):
        self.core = BatchedEmpathy(1, mode, max_turns, listener, reward_fn, situations, correctness)
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None")
        self.mode, self.render_mode = mode, render_mode
        self.action_space = self.core.single_action_space
        self.observation_space = spaces.Dict({  # Dict sorts its keys
            "utterance": self.core.single_observation_space, "turn": spaces.Discrete(max_turns + 1),
            "history": spaces.Text(MAX_TEXT, min_length=0, charset=CHARSET),
            "embedding": spaces.Box(-1.0, 1.0, (384,), np.float32)})
        self.transcript: list[str] = []

    def _obs(self) -> dict:
        from camp.models import embed

        said = self.core.utterances[0]
        vec = embed([said])[0]
        return {"utterance": clean(said), "history": clean("\n".join(self.transcript)),
                "turn": self.core.turn, "embedding": np.clip(vec, -1, 1).astype(np.float32)}

    def _info(self) -> dict:
        s = self.core.state
        return {"situation": self.core.people[0].id, "emotion": self.core.people[0].emotion,
                "probs": s["probs"][0].copy(), "intensity": float(s["intensity"][0]),
                "valence": float(s["valence"][0]), "understood": float(s["understood"][0])}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        chosen = (options or {}).get("situation")
        self.core.np_random = self.np_random  # one random stream, Gymnasium's
        said, _ = self.core.reset(options={"situations": [chosen] if chosen else None})
        self.transcript = [f"person: {said[0]}"]
        return self._obs(), self._info()

    def step(self, action):
        if self.core.state is None:
            raise RuntimeError("call reset() before step()")
        spoken = action
        if self.mode == "infer":
            if isinstance(action, bool) or not isinstance(action, int | np.integer) or not 0 <= int(action) < 6:
                raise ValueError(f"infer mode takes an emotion index 0..5 ({', '.join(EMOTIONS)}), got {action!r}")
            spoken = f"[names {EMOTIONS[int(action)]}]"
        said, reward, terminated, truncated, info = self.core.step([action])
        self.transcript += [f"agent: {str(spoken)[:MAX_REPLY_CHARS]}", f"person: {said[0]}"]
        info = {**self._info(), "signals": {k: float(v[0]) for k, v in info["signals"].items()},
                "reply_truncated": bool(info["reply_truncated"][0]), "crisis": bool(info["crisis"][0])}
        if self.render_mode == "human":
            print(self.render_text())
        return self._obs(), float(reward[0]), bool(terminated[0]), bool(truncated[0]), info

    def render_text(self) -> str:
        """The transcript so far with the hidden state."""
        info = self._info()
        top = np.argsort(-info["probs"])[:2]
        feeling = ", ".join(f"{EMOTIONS[k]} {info['probs'][k]:.0%}" for k in top)
        return ("\n".join(self.transcript) + f"\n  [hidden: {feeling}; intensity {info['intensity']:.2f}; "
                f"valence {info['valence']:+.2f}; understood {info['understood']:.2f}]")

    def render(self):
        if self.core.state is None:
            raise RuntimeError("call reset() before render()")
        text = self.render_text()
        if self.render_mode != "human":
            return text
        print(text)


if "camp/Empathy-v0" not in gym.registry:
    gym.register(id="camp/Empathy-v0", entry_point="camp.env:EmpathyEnv")
