"""An independent judge: nade's Plutchik emotion scores of a reply. Introduced in lesson 04.

The policy is never trained against it, so when a reward is being hacked the judge tends to disagree: a reply
spammed with "so sorry" scores high on the reward's sympathy words but reads to nade as pure sadness with
little trust or joy.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

PLUTCHIK = ("anger", "anticipation", "disgust", "fear", "joy", "sadness", "surprise", "trust")


@functools.lru_cache(maxsize=1)
def _nade():
    from nade import Nade

    return Nade()


def scores(texts: Sequence[str]) -> dict[str, np.ndarray]:
    """nade's eight Plutchik scores (each roughly 0..1) for each text."""
    texts = list(texts)
    if not texts:
        return {k: np.zeros(0) for k in PLUTCHIK}
    raw = _nade().predict(texts)
    return {k: np.asarray(raw[k].to_pylist() if hasattr(raw[k], "to_pylist") else raw[k], dtype=float)
            for k in PLUTCHIK}


def warmth(texts: Sequence[str]) -> np.ndarray:
    """Trust + joy as nade reads them: how warm and supportive a reply sounds to an outside judge."""
    s = scores(texts)
    return s["trust"] + s["joy"]
