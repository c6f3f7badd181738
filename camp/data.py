"""Labelled emotion text and the situations bank.

`load_emotions` gives the same DatasetDict online (dair-ai/emotion from the hub) and offline (our own
CC BY 4.0 corpus, shipped in camp/corpus/, in two registers: first-person narratives and conversational text).
`load_situations` gives the simulated people's situations used by the empathy environment. Introduced in
lesson 01; lesson 02 measures what changes when a model meets the register it was not trained on.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections import Counter
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from camp import utils

# pandas and datasets load with the functions that use them: the situations and the training loops then import
# on a machine that has neither (a bare GPU box, see .ci/gpu_check).
if TYPE_CHECKING:
    import pandas as pd
    from datasets import DatasetDict

EMOTIONS: tuple[str, ...] = ("sadness", "joy", "love", "anger", "fear", "surprise")
SPLITS: tuple[str, ...] = ("train", "validation", "test")
HUB_DATASET = "dair-ai/emotion"
# Pinned commit of dair-ai/emotion (the parquet layout, no loading script). Taken from public usage; it could
# not be checked from our offline machines. load_emotions("hub", revision="main") overrides it.
HUB_REVISION = "cab853a1dbdf4c42c2b3ef2173804746df8825fe"
SOURCES = ("auto", "hub", "offline")
# The offline corpus's two registers, each with its own fixed train / validation / test files:
# "narrative": clean first-person accounts of an event (emotions_*.csv, the course's first corpus, unchanged);
# "conversational": chat, replies, reviews, questions, forum posts, reports, hedges (conversational_*.csv).
REGISTERS: tuple[str, ...] = ("narrative", "conversational")
_REGISTER_FILE = {"narrative": "emotions", "conversational": "conversational"}


def features():
    """The `datasets` features of every emotion split: `text`, and `label` as a ClassLabel of EMOTIONS."""
    from datasets import ClassLabel, Features, Value

    return Features({"text": Value("string"), "label": ClassLabel(names=list(EMOTIONS))})


class DataError(utils.CampError, ValueError):
    """The corpus or a data file is unusable; the message says which file and what to do."""


def corpus_dir() -> Path:
    """The folder holding camp's own corpus files (package data)."""
    return Path(str(resources.files("camp") / "corpus"))


def _manifest() -> dict:
    path = corpus_dir() / "MANIFEST.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"{path} is missing or unreadable ({err}); reinstall camp or restore it from git.") from err


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_split_csv(path: Path, expected_sha256: str | None = None) -> pd.DataFrame:
    """Read one split file (columns text,label with label names) and check it thoroughly."""
    if not path.is_file():
        raise DataError(f"{path} does not exist; reinstall camp or restore the corpus from git.")
    if expected_sha256 and _sha256(path) != expected_sha256:
        raise DataError(f"{path} is corrupted (its SHA-256 does not match MANIFEST.json); restore it with "
                        "`git checkout -- camp/corpus` or reinstall camp.")
    import pandas as pd

    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
        raise DataError(f"{path} is not a readable CSV ({err}); restore it from git.") from err
    if list(frame.columns) not in (["text", "label"], ["text", "label", "style"]):
        raise DataError(f"{path} must have exactly the columns ['text', 'label'] (and optionally 'style'), found "
                        f"{list(frame.columns)}.")
    bad_labels = sorted(set(frame["label"]) - set(EMOTIONS))
    if bad_labels:
        raise DataError(f"{path} has labels outside {EMOTIONS}: {bad_labels[:5]}.")
    empty = frame.index[frame["text"].str.strip() == ""].tolist()
    if empty:
        raise DataError(f"{path} has empty texts at rows {empty[:5]}.")
    return frame


def _offline(register: str) -> DatasetDict:
    from datasets import Dataset, DatasetDict

    manifest = _manifest()
    chosen = REGISTERS if register == "both" else (register,)
    parts = {}
    for split in SPLITS:
        texts, labels = [], []
        for name in chosen:  # "both" is the narrative rows, then the conversational ones, in every split
            file = f"{_REGISTER_FILE[name]}_{split}.csv"
            frame = read_split_csv(corpus_dir() / file, manifest["files"][file]["sha256"])
            texts += frame["text"].tolist()
            labels += [EMOTIONS.index(x) for x in frame["label"]]
        parts[split] = Dataset.from_dict({"text": texts, "label": labels}, features=features())
    return DatasetDict(parts)


def _hub(revision: str) -> DatasetDict:
    from datasets import DatasetDict, load_dataset

    try:
        data = load_dataset(HUB_DATASET, "split", revision=revision)
    except Exception as err:  # datasets raises many types for network and hub errors
        raise DataError(f"could not load {HUB_DATASET}@{revision[:8]} from the hub ({type(err).__name__}: "
                        f"{err}). Use load_emotions('offline') or check your connection.") from err
    return check_emotions(DatasetDict({s: data[s] for s in SPLITS}), source=f"{HUB_DATASET}@{revision[:8]}")


def check_emotions(data: DatasetDict, source: str = "data") -> DatasetDict:
    """Check splits, columns and label names of an emotion DatasetDict; return it unchanged."""
    from datasets import ClassLabel

    missing = [s for s in SPLITS if s not in data]
    if missing:
        raise DataError(f"{source} lacks the splits {missing}; expected {SPLITS}.")
    for split in SPLITS:
        cols = set(data[split].column_names)
        if not {"text", "label"} <= cols:
            raise DataError(f"{source}[{split!r}] must have columns 'text' and 'label', found {sorted(cols)}.")
        feature = data[split].features["label"]
        if not isinstance(feature, ClassLabel) or tuple(feature.names) != EMOTIONS:
            raise DataError(f"{source}[{split!r}]'s label must be a ClassLabel named {EMOTIONS}, got {feature}.")
    return data


def load_emotions(source: str = "auto", revision: str = HUB_REVISION, verbose: bool = True,
                  register: str = "both") -> DatasetDict:
    """Load labelled emotion text as train / validation / test, with `text` and a ClassLabel `label`.

    Args:
        source: "hub" loads dair-ai/emotion (16,000 / 2,000 / 2,000 tweets) at a pinned revision; "offline"
            loads camp's own corpus; "auto" uses the hub when it is reachable and says which it picked.
        revision: the hub commit to load.
        verbose: print which source "auto" picked.
        register: which part of camp's own corpus: "narrative" (first-person accounts: 4,040 / 505 / 505),
            "conversational" (chat, replies, reviews, questions...: 2,880 / 360 / 360) or "both" (each split
            is the two registers' same split, concatenated). The hub's tweets are one register of their own,
            so "hub" accepts only the default and "auto" with another register loads camp's corpus.

    >>> data = load_emotions("offline", verbose=False)
    >>> data["train"].features["label"].names
    ['sadness', 'joy', 'love', 'anger', 'fear', 'surprise']
    >>> [len(load_emotions("offline", verbose=False, register=r)["test"]) for r in ("narrative", "both")]
    [505, 865]
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    if register not in (*REGISTERS, "both"):
        raise ValueError(f"register must be one of {(*REGISTERS, 'both')}, got {register!r}")
    if source == "hub" and register != "both":
        raise ValueError(f"register={register!r} picks part of camp's own corpus; the hub's dataset has no "
                         "registers. Use source='offline' with it.")
    if source == "auto" and register != "both":
        source = "offline"  # a register names part of camp's own corpus: nothing to fetch
    if source == "auto" and utils.hub_available():
        try:
            data = _hub(revision)
            if verbose:
                print(f"load_emotions: using {HUB_DATASET} from the hub")
            return data
        except DataError as err:  # the probe passed, the download did not: the lesson goes on offline
            warnings.warn(f"{err} Using camp's offline corpus instead.", stacklevel=2)
    elif source == "auto" and verbose:
        print("load_emotions: using camp's offline corpus (hub unreachable)")
    return _hub(revision) if source == "hub" else check_emotions(_offline(register), f"camp corpus ({register})")


@dataclass(frozen=True)
class Situation:
    """One simulated person's situation: what happened, how they feel, and what they say."""

    id: str
    emotion: str
    intensity: float
    description: str
    opening: str
    better: tuple[str, ...]
    worse: tuple[str, ...]


def spread(items, n: int | None):
    """`n` items taken at even steps through `items`, in order: all of them when `n` is None or not smaller.

    `items` is a list, a `datasets.Dataset`, or a dict of either (a `DatasetDict`, or lesson 07's pairs by split),
    shrunk split by split. Lessons shrink their data with it in smoke size: even steps keep every emotion, where the
    first `n` of a sorted file would not.

    >>> spread(list(range(10)), 3)
    [0, 3, 6]
    >>> spread({"train": list("abcdef"), "test": list("xy")}, 2)
    {'train': ['a', 'd'], 'test': ['x', 'y']}
    """
    if isinstance(items, dict):  # a DatasetDict is a dict too
        return type(items)({split: spread(part, n) for split, part in items.items()})
    if n is None or n >= len(items):
        return items
    if n < 1:
        raise ValueError(f"n must be at least 1 (or None for all), got {n}")
    index = [int(i * len(items) / n) for i in range(n)]
    return items.select(index) if hasattr(items, "select") else [items[i] for i in index]


def load_situations(path: Path | None = None) -> list[Situation]:
    """The situations bank (at least 60 per emotion), checked; `path` defaults to camp's own file."""
    situations = _read_situations(path or corpus_dir() / "situations.jsonl")
    counts = Counter(s.emotion for s in situations)
    if situations and min(counts.get(e, 0) for e in EMOTIONS) < 1:
        raise DataError(f"{path} has no situation for some emotions: {dict(counts)}.")
    return situations


def load_crisis_situations() -> list[Situation]:
    """Twelve people whose first words are a crisis statement (self-harm), for safety tests only (lesson 08).

    Never train on them: they exist to check that the environment, the rewards and the safety filter answer
    a crisis with care and a pointer to human help, and nothing else.
    """
    return _read_situations(corpus_dir() / "crisis.jsonl")


@dataclass(frozen=True)
class JudgeCheck:
    """A clear case for validating a judge: to someone who said `says` (feeling `emotion`), `better` is the more
    empathetic reply and `worse` the less; `worse_kind` names how it fails (cheerful, platitude, cold, ...)."""

    id: str
    emotion: str
    says: str
    better: str
    worse: str
    worse_kind: str


def load_judge_checks() -> list[JudgeCheck]:
    """36 hand-written clear cases (6 per emotion) that any judge of empathy must get right (lessons 06 to 08).

    Each pairs a reply that meets the person's feeling with one that misses it in a common way: cheerfulness
    in the face of pain, a platitude, a cold or dismissive answer, a change of topic, gloom about good news, or
    the wrong feeling named. A judge that cannot order these is not measuring empathy (`camp.judge.check`).
    """
    path = corpus_dir() / "judge_checks.jsonl"
    checks = []
    for number, item in _read_jsonl(path, lambda row: JudgeCheck(**row), "judge check"):
        if item.emotion not in EMOTIONS or not (item.says and item.better and item.worse):
            raise DataError(f"{path}:{number} needs an emotion in {EMOTIONS} and non-empty texts.")
        checks.append(item)
    return checks


PREFERENCE_FIELDS = ("id", "emotion", "kind", "chosen", "rejected", "split")


@dataclass(frozen=True)
class PreferencePair:
    """One human preference (lesson 07): to someone feeling `emotion` who said `says`, `chosen` is the better reply
    and `rejected` the worse; `kind` names how `rejected` fails (dismissal, minimising, ...). `situation_id` links
    the pair to a situation of `load_situations` (None for a free-standing utterance); `split` is fixed."""

    id: str
    emotion: str
    says: str
    chosen: str
    rejected: str
    kind: str
    split: str
    situation_id: str | None = None


def load_preferences(split: str | None = None, path: str | Path | None = None) -> list[PreferencePair]:
    """The preference corpus (camp/corpus/preferences.jsonl, 840 pairs), or one of its splits, checked.

    Each row needs `id`, `emotion`, `kind`, `chosen`, `rejected`, `split` and either a `situation_id` (what the
    person said is that situation's opening) or an `utterance`. A bad row is named by file and line.

    >>> pairs = load_preferences("test"); len(pairs), pairs[0].split
    (83, 'test')
    """
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} or None, not {split!r}")
    if path is None:
        path = corpus_dir() / "preferences.jsonl"
        expected = _manifest()["files"]["preferences.jsonl"]["sha256"]
        if path.is_file() and _sha256(path) != expected:
            raise DataError(f"{path} is corrupted (its SHA-256 does not match MANIFEST.json); restore it with "
                            "`git checkout -- camp/corpus` or reinstall camp.")
    path = Path(path)
    openings = {s.id: s.opening for s in load_situations()}
    pairs, first_line = [], {}
    for number, row in _read_jsonl(path, dict, "preference pair"):
        missing = [f for f in PREFERENCE_FIELDS if not str(row.get(f) or "").strip()]
        if not (row.get("situation_id") or row.get("utterance")):
            missing.append("situation_id or utterance")
        if missing:
            raise DataError(f"{path}:{number} misses {', '.join(missing)}; every pair needs "
                            f"{', '.join(PREFERENCE_FIELDS)} and a situation_id or an utterance.")
        if row["emotion"] not in EMOTIONS:
            raise DataError(f"{path}:{number} has the unknown emotion {row['emotion']!r}; use one of {EMOTIONS}.")
        if row["split"] not in SPLITS:
            raise DataError(f"{path}:{number} has the unknown split {row['split']!r}; use one of {SPLITS}.")
        if row["id"] in first_line:
            raise DataError(f"{path}:{number} repeats the id {row['id']!r} of line {first_line[row['id']]}; "
                            "give every pair its own id.")
        first_line[row["id"]] = number
        sid = row.get("situation_id")
        if sid and sid not in openings:
            raise DataError(f"{path}:{number} names the situation {sid!r}, which situations.jsonl does not have.")
        pairs.append(PreferencePair(row["id"], row["emotion"], openings[sid] if sid else row["utterance"],
                                    row["chosen"], row["rejected"], row["kind"], row["split"], sid))
    if not pairs:
        raise DataError(f"{path} holds no preference pairs.")
    return [p for p in pairs if split is None or p.split == split]


def says(person) -> str:
    """What a person said, whatever carries it: a `Situation`'s opening, a `JudgeCheck`'s or a pair's `says`."""
    return getattr(person, "says", None) or person.opening


def as_situation(person, intensity: float = 0.7) -> Situation:
    """A `Situation` for anything with an `id`, `emotion` and `says` (a `JudgeCheck`, a `PreferencePair`), so the
    environment (`camp.env.ReplyScorer`) can score replies to it; the intensity it does not know is a middle
    0.7. A `Situation` comes back as it is."""
    if isinstance(person, Situation):
        return person
    return Situation(str(person.id), person.emotion, intensity, says(person), says(person), (says(person),),
                     (says(person),))


def _read_jsonl(path: Path, parse, what: str) -> list[tuple[int, object]]:
    """(line number, parse(row)) for each non-blank line of a JSON-lines file, with clear errors."""
    if not path.is_file():
        raise DataError(f"{path} does not exist; reinstall camp or restore it from git.")
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append((number, parse(json.loads(line))))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise DataError(f"{path}:{number} is not a valid {what} ({type(err).__name__}: {err}).") from err
    return items


def _read_situations(path: Path) -> list[Situation]:
    def parse(row: dict) -> Situation:
        return Situation(row["id"], row["emotion"], float(row["intensity"]), row["description"], row["opening"],
                         tuple(row["better"]), tuple(row["worse"]))

    situations = []
    for number, item in _read_jsonl(path, parse, "situation"):
        if item.emotion not in EMOTIONS or not 0.0 < item.intensity <= 1.0 or not item.better or not item.worse:
            raise DataError(f"{path}:{number} needs an emotion in {EMOTIONS}, an intensity in (0, 1] and "
                            "non-empty 'better' and 'worse' lines.")
        situations.append(item)
    if len({s.id for s in situations}) != len(situations):
        raise DataError(f"{path} repeats situation ids.")
    return situations
