"""Interactive widgets for lessons 03, 04 and 07: a chat playground, reward-weight sliders, a preference rater and
a side-by-side view of several policies' replies.

All four work headless (their callbacks can be driven from code, as the tests do), so they are tested without a
browser; `python -m pytest tests/test_widgets.py` shows how.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import ipywidgets as w

from camp.data import EMOTIONS
from camp.rewards import RewardSpec


def _bar(label: str, value: float, low: float = 0.0, high: float = 1.0) -> str:
    share = (min(max(value, low), high) - low) / (high - low)
    return (f"<div style='display:flex;align-items:center;gap:6px'><span style='width:90px'>{label}</span>"
            f"<span style='display:inline-block;width:{int(160 * share)}px;height:10px;background:#4a7'></span>"
            f"<span>{value:+.2f}</span></div>")


class ChatPlayground:
    """Type a reply, send it, and watch the person's hidden state and each reward signal change.

    With a `spec` (`camp.rewards.RewardSpec`), each of its terms is shown too, computed from the step's
    `camp.env.transition_context`: the same context the environment hands its reward. `send(text)` does what the
    Send button does, so the playground can be driven from code.
    """

    def __init__(self, env, seed: int = 0, spec: RewardSpec | None = None):
        self.env, self.spec = env, spec
        self.reply = w.Text(placeholder="Type your reply and press Send", layout=w.Layout(width="70%"))
        self.button = w.Button(description="Send", button_style="primary")
        self.reset_button = w.Button(description="New person")
        self.transcript = w.HTML()
        self.state = w.HTML()
        self.signals = w.HTML()
        self.history: list[dict] = []
        self.button.on_click(lambda _: self.send(self.reply.value))
        self.reset_button.on_click(lambda _: self.reset())
        self.widget = w.VBox([w.HBox([self.reply, self.button, self.reset_button]), self.transcript,
                              w.HBox([self.state, self.signals])])
        self.reset(seed)

    def reset(self, seed: int | None = None) -> None:
        _, self.info = self.env.reset(seed=seed)
        self.history, self.done = [], False
        self._render({})

    def send(self, text: str) -> dict | None:
        """Step the environment with `text`; returns the step record, or None if the reply was refused."""
        from camp.env import transition_context

        if self.done:
            self.signals.value = "<i>The conversation has ended: press New person.</i>"
            return None
        core = self.env.core  # the one-person BatchedEmpathy inside the EmpathyEnv
        said, before = core.utterances[0], core.state  # what the reply answers; after the step both have moved on
        try:
            obs, reward, terminated, truncated, info = self.env.step(text)
        except (ValueError, TypeError) as err:
            self.signals.value = f"<b style='color:#c33'>{html.escape(str(err))}</b>"
            return None
        record = {"reply": text, "reward": reward, **info["signals"]}
        if self.spec is not None:
            _, parts = self.spec([text], **transition_context(before, core.state, core.people, [said]))
            record.update({f"term/{k}": v[0] for k, v in parts.items()})
        self.history.append(record)
        self.info, self.done = info, terminated or truncated
        self.reply.value = ""
        self._render(record)
        return record

    def _render(self, record: dict) -> None:
        lines = self.env.transcript
        self.transcript.value = "<br>".join(html.escape(x) for x in lines) + \
            ("<br><b>(the person feels better)</b>" if self.done and record else "")
        info = self.info
        bars = "".join(_bar(e, float(p)) for e, p in zip(EMOTIONS, info["probs"], strict=True))
        self.state.value = (f"<b>hidden state</b>{bars}{_bar('intensity', info['intensity'])}"
                            f"{_bar('valence', info['valence'], -1, 1)}{_bar('understood', info['understood'])}")
        rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:+.3f}</td></tr>" for k, v in record.items()
                       if isinstance(v, int | float) and not isinstance(v, bool))
        self.signals.value = f"<b>last reply</b><table>{rows}</table>" if rows else "<b>last reply</b>: none yet"


class RewardSliders:
    """One slider per reward term's weight; moving one re-ranks a fixed set of candidate replies."""

    def __init__(self, spec: RewardSpec, completions: Sequence[str], **context):
        self.spec, self.completions, self.context = spec, list(completions), context
        self.sliders = {name: w.FloatSlider(value=weight, min=-2.0, max=5.0, step=0.1, description=name)
                        for name, (_, weight) in spec.terms.items()}
        for name, slider in self.sliders.items():
            slider.observe(lambda change, n=name: self._set(n, change["new"]), names="value")
        self.table = w.HTML()
        self.widget = w.VBox([*self.sliders.values(), self.table])
        self.update()

    def _set(self, name: str, weight: float) -> None:
        fn, _ = self.spec.terms[name]
        self.spec.terms[name] = (fn, weight)
        self.update()

    def update(self) -> list[tuple[float, str]]:
        """Recompute totals and return the candidates ranked best first."""
        totals, _ = self.spec(self.completions, **self.context)
        self.ranking = sorted(zip(totals, self.completions, strict=True), key=lambda x: -x[0])
        rows = "".join(f"<tr><td>{t:+.2f}</td><td>{html.escape(c)}</td></tr>" for t, c in self.ranking)
        self.table.value = f"<table><tr><th>reward</th><th>reply</th></tr>{rows}</table>"
        return self.ranking


class PreferenceRater:
    """Rate pairs of replies, A or B (or tie, or skip): every click is one line added to a JSON-lines file.

    The two replies of each `camp.preferences.RatingItem` appear side by side in an order drawn from `seed`, so
    which side the better-looking reply sits on tells nothing; the order shown is recorded with the rating.
    Writes are atomic (`camp.preferences.append_rating`): a full disk or a read-only file shows an error here
    and loses no earlier rating. `rate("a")` does what the A button does, so the rater can be driven from code.
    """

    def __init__(self, items: Sequence, path, seed: int = 0, rater: str = "you"):
        import numpy as np

        from camp.preferences import CHOICES

        self.items, self.path, self.rater, self.index = list(items), path, rater, 0
        if not self.items:
            raise ValueError("nothing to rate: give at least one RatingItem (camp.preferences.items_from_pairs)")
        self.flipped = (np.random.default_rng(seed).random(len(self.items)) < 0.5).tolist()
        self.said, self.left, self.right, self.status = w.HTML(), w.HTML(), w.HTML(), w.HTML()
        labels = {"a": "A is better", "b": "B is better", "tie": "Tie", "skip": "Skip"}
        self.buttons = {c: w.Button(description=labels[c], button_style="primary" if c in "ab" else "")
                        for c in CHOICES}
        for choice, button in self.buttons.items():
            button.on_click(lambda _, c=choice: self.rate(c))
        box = w.Layout(width="48%", border="1px solid #ccc", padding="6px")
        self.left.layout, self.right.layout = box, box
        self.widget = w.VBox([self.said, w.HBox([self.left, self.right]), w.HBox(list(self.buttons.values())),
                              self.status])
        self._render()

    def shown(self) -> tuple[str, str]:
        """The replies on the left (A) and the right (B) now."""
        item = self.items[self.index]
        return (item.second, item.first) if self.flipped[self.index] else (item.first, item.second)

    def rate(self, choice: str) -> dict | None:
        """Record `choice` ("a", "b", "tie" or "skip") for the pair shown and move on; None once all are rated
        or when the rating could not be saved (the message says why, and the pair stays on screen)."""
        from camp.preferences import RatingsError, append_rating

        if self.index >= len(self.items):
            return None
        item, (a, b) = self.items[self.index], self.shown()
        record = {"item": item.id, "source": item.source, "situation_id": item.situation_id,
                  "emotion": item.emotion, "says": item.says, "a": a, "b": b, "flipped": self.flipped[self.index],
                  "choice": choice, "rater": self.rater}
        if item.source == "corpus":
            record["corpus_prefers"] = "b" if self.flipped[self.index] else "a"
        try:
            append_rating(self.path, record)
        except RatingsError as err:
            self.status.value = f"<b style='color:#c33'>{html.escape(str(err))}</b>"
            return None
        self.index += 1
        self._render()
        return record

    def _render(self) -> None:
        if self.index >= len(self.items):
            self.said.value = f"<b>All {len(self.items)} pairs rated.</b> Your ratings are in {self.path}."
            self.left.value = self.right.value = ""
            for button in self.buttons.values():
                button.disabled = True
            return
        item, (a, b) = self.items[self.index], self.shown()
        self.said.value = (f"<b>Pair {self.index + 1} of {len(self.items)}.</b> Someone feeling "
                           f"<i>{item.emotion}</i> says: &ldquo;{html.escape(item.says)}&rdquo;")
        self.left.value = f"<b>A</b><br>{html.escape(a)}"
        self.right.value = f"<b>B</b><br>{html.escape(b)}"
        self.status.value = f"saved to {html.escape(str(self.path))}"


class SideBySide:
    """Type what a person says, pick how they feel, and read each policy's reply side by side, with a scorer's
    score (lesson 07: the reward model) and the judge's attunement.

    `policy` is one `camp.lm.PolicyWithValue`; `adapters` maps a name to an adapter state (`policy.adapter_state()`
    after training) or None for the reference (adapters off). Swapping
    adapters in one model costs no second copy of the weights. `send(text, emotion)` does what the button does
    and returns one row per policy: `policy`, `reply`, `score` (the `scorer`'s, a `camp.roles.Scorer`), `judge`. `max_new_tokens` caps a reply's
    length (a reply ends after two sentences anyway).
    """

    def __init__(self, policy, adapters: dict, scorer=None, seed: int = 0, temperature: float = 0.7,
                 max_new_tokens: int = 40):
        if not adapters:
            raise ValueError("nothing to compare: give adapters, e.g. {'reference': None, 'DPO': p.adapter_state()}")
        self.policy, self.adapters, self.scorer = policy, dict(adapters), scorer
        self.seed, self.temperature, self.max_new_tokens = seed, temperature, max_new_tokens
        self.said = w.Text(placeholder="What the person says", layout=w.Layout(width="60%"))
        self.feeling = w.Dropdown(options=list(EMOTIONS), value="sadness", description="feeling")
        self.button = w.Button(description="Reply", button_style="primary")
        self.table = w.HTML()
        self.rows: list[dict] = []
        self.button.on_click(lambda _: self.send(self.said.value, self.feeling.value))
        self.widget = w.VBox([w.HBox([self.said, self.feeling, self.button]), self.table])

    def send(self, text: str, emotion: str = "sadness") -> list[dict]:
        """Each policy's reply to `text` from someone feeling `emotion`, scored; also shown in the widget."""
        from camp import judge
        from camp.data import PreferencePair
        from camp.env import clean
        from camp.utils import set_seed

        if not (text or "").strip() or emotion not in EMOTIONS:
            self.table.value = ("<b style='color:#c33'>Type what the person says and pick one of "
                                f"{', '.join(EMOTIONS)}.</b>")
            return []
        text = clean(text)
        person = PreferencePair("typed", emotion, text, "", "", "typed", "train")
        saved = self.policy.adapter_state()
        rows = []
        try:
            for name, state in self.adapters.items():
                set_seed(self.seed)  # every policy draws the same random numbers: differences are the policy's
                if state is None:
                    with self.policy.reference():
                        reply = self._reply(text)
                else:
                    self.policy.load_adapter_state(state)
                    reply = self._reply(text)
                rows.append({"policy": name, "reply": reply,
                             "score": float(self.scorer([reply], [person])[0]) if self.scorer else float("nan"),
                             "judge": float(judge.score([reply or "..."], [person])[0])})
        finally:
            self.policy.load_adapter_state(saved)  # leave the policy as it came
        self.rows = rows
        cells = "".join(f"<tr><td><b>{html.escape(r['policy'])}</b></td><td>{html.escape(r['reply'])}</td>"
                        f"<td>{r['score']:+.2f}</td><td>{r['judge']:.2f}</td></tr>" for r in rows)
        self.table.value = ("<table><tr><th>policy</th><th>reply</th><th>score</th><th>judge</th></tr>"
                            f"{cells}</table>")
        return rows

    def _reply(self, text: str) -> str:
        from camp.lm import sample_replies

        return sample_replies(self.policy, [text], self.max_new_tokens, self.temperature)["texts"][0]

