"""GPU smoke check for a bare machine: no network, no model wheels, only torch, transformers, peft and accelerate.

It builds tiny random-initialised models from configs (2-layer BERTs with 6 labels and with 1, a 2-layer Llama
policy) and a word-level tokenizer from a word list, then runs a few steps of each of camp's training loops on
the device:

* the classifier loop (`camp.train.train_classifier`), in float32 and in bfloat16 mixed precision;
* the reward model's Bradley-Terry loop (`camp.reward_model.train_reward_model`), the same two ways;
* the PPO loop (`camp.ppo.train_ppo`) on emotion guessing with synthetic features, in float32 (a linear head
  has no mixed-precision option);
* token-level PPO (`camp.rlhf.train_rlhf`), with float32 weights and with bfloat16 weights plus bf16 autocast,
  and the same loop as RLOO (no critic);
* DPO (`camp.dpo.train_dpo`) on the corpus's pairs and on the policy's own samples, the same two ways.

For each it asserts that parameters live on the device, every logged loss is finite, and a run stopped part-way
and resumed from its checkpoint ends where an uninterrupted run does; then it prints a table (and writes it as
JSON with --out). Pure-Python wheels in gpu_wheels/ (gymnasium and its two small dependencies, which
`bash .ci/gpu_check --prepare` downloads here) go on sys.path, since camp.env needs gymnasium.

    python .ci/gpu_check.py                  # on the GPU machine (cuda); exits 1 if any check fails
    python .ci/gpu_check.py --device cpu     # the same checks on a CPU (tests/test_gpu_check.py runs this)
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
import traceback
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), *sorted(str(p) for p in (ROOT / "gpu_wheels").glob("*.whl"))]

import numpy as np  # noqa: E402
import torch  # noqa: E402

WORDS = ("i feel so sad happy angry scared love surprised today my dog died we won the cup lost job friend "
         "mum dad called me never thought it would happen again thank you for listening that sounds hard "
         "you must be proud sorry to hear this is wonderful news how are you doing : ? ! . , system user "
         "assistant").split()
TEXTS = [" ".join(WORDS[(7 * i + j) % 40] for j in range(4 + i % 9)) for i in range(96)]
LABELS = [i % 6 for i in range(96)]


def tokenizer(padding_side: str = "right"):
    """A word-level tokenizer over WORDS, with the special tokens camp's loops expect and a chat template."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "<eos>", *dict.fromkeys(WORDS)])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="[PAD]", unk_token="[UNK]", eos_token="<eos>",
                                  padding_side=padding_side, model_input_names=["input_ids", "attention_mask"])
    tok.chat_template = ("{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} {% endfor %}"
                         "{% if add_generation_prompt %}assistant : {% endif %}")
    return tok


def _on(model: torch.nn.Module, device: torch.device) -> bool:
    return all(p.device.type == device.type for p in model.parameters())


def _finite(history: list[dict]) -> bool:
    return all(math.isfinite(v) for h in history for k, v in h.items() if k.startswith("loss") and
               isinstance(v, float))


def _gap(a: torch.nn.Module, b: torch.nn.Module) -> float:
    """Largest absolute difference between two models' trainable parameters."""
    pairs = zip(a.parameters(), b.parameters(), strict=True)
    return max(float((x.detach().float() - y.detach().float()).abs().max()) for x, y in pairs if x.requires_grad)


class _Stop(Exception):
    """Raised from a callback to stop a run part-way, as a lost session would."""


def _interrupted(run, step: int) -> None:
    """`run(callback=...)` stopped when it reports `step`, after the checkpoint of the step before."""
    def stop(at, record):
        if at == step:
            raise _Stop

    try:
        run(callback=stop)
    except _Stop:
        pass


def classifier(device: torch.device, precision: str, folder: Path) -> dict:
    from transformers import BertConfig, BertForSequenceClassification

    from camp import data, train

    tok = tokenizer()

    def model():
        torch.manual_seed(0)
        return BertForSequenceClassification(BertConfig(
            vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            max_position_embeddings=64, num_labels=6, id2label=dict(enumerate(data.EMOTIONS))))

    splits = {"train": {"text": TEXTS[:64], "label": LABELS[:64]},
              "validation": {"text": TEXTS[64:], "label": LABELS[64:]}}
    cfg = train.TrainConfig(max_steps=6, eval_every=2, batch_size=8, lr=1e-3, checkpoint_dir=str(folder),
                            checkpoint_every=1, checkpoint_minutes=0, mixed_precision=precision, patience=None,
                            progress=False)
    straight, history = train.train_classifier(model(), tok, splits, cfg)

    cut = train.TrainConfig(**{**cfg.__dict__, "checkpoint_dir": str(folder / "cut")})
    _interrupted(lambda callback: train.train_classifier(model(), tok, splits, cut, callback=callback), 4)
    resumed, _ = train.train_classifier(model(), tok, splits, cut, resume=True)
    return {"on device": _on(straight, device), "finite": _finite(history),
            "resume gap": _gap(straight, resumed), "steps": len(history) * cfg.eval_every}


def reward_model(device: torch.device, precision: str, folder: Path) -> dict:
    from transformers import BertConfig, BertForSequenceClassification

    from camp.data import PreferencePair
    from camp.reward_model import RewardConfig, RewardModel, train_reward_model

    tok = tokenizer()

    def rm():
        torch.manual_seed(0)
        return RewardModel(BertForSequenceClassification(BertConfig(
            vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            max_position_embeddings=64, num_labels=1)), tok)

    pairs = [PreferencePair(f"p{i}", "sadness", TEXTS[i], TEXTS[i + 1], TEXTS[i + 2], "k", "train")
             for i in range(0, 90, 2)]
    cfg = RewardConfig(max_steps=6, eval_every=2, batch_size=8, lr=1e-3, eval_train_pairs=8,
                       checkpoint_dir=str(folder), checkpoint_every=1, checkpoint_minutes=0,
                       mixed_precision=precision, patience=None, progress=False)
    straight, history = train_reward_model(rm(), pairs[:32], pairs[32:], cfg)
    cut = RewardConfig(**{**cfg.__dict__, "checkpoint_dir": str(folder / "cut")})
    _interrupted(lambda callback: train_reward_model(rm(), pairs[:32], pairs[32:], cut, callback=callback), 4)
    resumed, _ = train_reward_model(rm(), pairs[:32], pairs[32:], cut, resume=True)
    return {"on device": _on(straight.model, device), "finite": _finite(history),
            "resume gap": _gap(straight.model, resumed.model), "steps": len(history) * cfg.eval_every}


def ppo_loop(device: torch.device, precision: str, folder: Path) -> dict:
    from camp import ppo, rl_envs

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 6, 256)
    features = rng.normal(size=(256, 16)).astype(np.float32)
    features[np.arange(256), labels] += 3.0  # separable, so a few updates show learning

    def run(sub="straight", **kw):
        torch.manual_seed(0)
        env = rl_envs.EmotionGuessing(features, labels, n=64, seed=0)
        cfg = ppo.PPOConfig(updates=6, ppo_epochs=2, eval_every=2, checkpoint_dir=str(folder / sub),
                            checkpoint_every=1, device=str(device), progress=False)
        return ppo.train_ppo(ppo.ActorCritic(16, 6), env, cfg, eval_data=(features, labels), **kw)

    straight, history = run()
    _interrupted(lambda callback: run("cut", callback=callback), 4)
    resumed, _ = run("cut", resume=True)
    return {"on device": _on(straight, device), "finite": _finite(history), "resume gap": _gap(straight, resumed),
            "steps": 6}


def _tiny_policy(device: torch.device, precision: str):
    """A 2-layer Llama policy with LoRA, and its tokenizer: `make()` builds the same fresh policy each time."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from camp import lm

    tok = tokenizer(padding_side="left")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32

    def make():
        torch.manual_seed(0)
        base = LlamaForCausalLM(LlamaConfig(
            vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=256, eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id, bos_token_id=None)).to(dtype)
        return lm.PolicyWithValue(base, tok, target_modules=("q_proj", "v_proj")).to(device)

    return make, tok


def _longer(replies, who):  # a stand-in for the environment or a reward model: longer replies score higher
    return np.array([len(r.split()) / 8 for r in replies], dtype=float)


def token_ppo(device: torch.device, precision: str, folder: Path, algorithm: str = "ppo") -> dict:
    from camp import data, rlhf

    policy, tok = _tiny_policy(device, precision)
    people = data.load_situations()[:8]

    def run(sub="straight", **kw):
        cfg = rlhf.RLHFConfig(algorithm=algorithm, steps=3, batch_size=4, replies_per_person=2, n_minibatches=1,
                              ppo_epochs=1, max_new_tokens=6, mixed_precision=precision,
                              checkpoint_dir=str(folder / sub), checkpoint_every=1, progress=False)
        return rlhf.train_rlhf(policy(), people, cfg, scorer=_longer, **kw)

    straight, history = run()
    _interrupted(lambda callback: run("cut", callback=callback), 3)
    resumed, _ = run("cut", resume=True)
    return {"on device": _on(straight, device), "finite": _finite(history), "resume gap": _gap(straight, resumed),
            "steps": len(history)}


def dpo_loop(device: torch.device, precision: str, folder: Path, source: str = "offline") -> dict:
    from camp import data, dpo

    policy, tok = _tiny_policy(device, precision)
    pairs, people = data.load_preferences("train")[:16], data.load_situations()[:8]

    def run(sub="straight", **kw):
        cfg = dpo.DPOConfig(source=source, steps=3, batch_size=4, replies_per_person=2, max_new_tokens=6,
                            max_reply_tokens=12, mixed_precision=precision, checkpoint_dir=str(folder / sub),
                            checkpoint_every=1, progress=False)
        return dpo.train_dpo(policy(), pairs if source == "offline" else people, cfg, scorer=_longer, **kw)

    straight, history = run()
    _interrupted(lambda callback: run("cut", callback=callback), 3)
    resumed, _ = run("cut", resume=True)
    return {"on device": _on(straight, device), "finite": _finite(history), "resume gap": _gap(straight, resumed),
            "steps": len(history)}


CHECKS = (("classifier loop", classifier, ("no", "bf16")), ("reward model", reward_model, ("no", "bf16")),
          ("PPO loop", ppo_loop, ("no",)), ("token-level PPO", token_ppo, ("no", "bf16")),
          ("token-level RLOO", partial(token_ppo, algorithm="rloo"), ("no", "bf16")),
          ("DPO, offline", dpo_loop, ("no", "bf16")),
          ("DPO, on-policy", partial(dpo_loop, source="on_policy"), ("no", "bf16")))
# A resumed run repeats the same arithmetic; on a GPU some kernels are not bit-exact, so allow a little.
TOLERANCE = {"no": 1e-4, "bf16": 5e-2}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--out", help="also write the table as JSON here")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; use --device cpu to run the same checks on the CPU.")
        return 2
    device = torch.device(args.device)
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(f"gpu_check on {name}, torch {torch.__version__}")
    rows = []
    for label, check, precisions in CHECKS:
        for precision in precisions:
            start = time.perf_counter()
            row = {"check": label, "precision": "fp32" if precision == "no" else precision}
            try:
                with tempfile.TemporaryDirectory() as folder:
                    row.update(check(device, precision, Path(folder)))
                row["ok"] = row["on device"] and row["finite"] and row["resume gap"] <= TOLERANCE[precision]
            except Exception as err:  # one failing check must not hide the others
                row.update(ok=False, error=f"{type(err).__name__}: {err}")
                traceback.print_exc()
            row["seconds"] = round(time.perf_counter() - start, 1)
            rows.append(row)
    print(f"\n{'check':<17}{'precision':<11}{'device':<8}{'finite':<8}{'resume gap':<12}{'s':>6}  result")
    for r in rows:
        gap = f"{r['resume gap']:.1e}" if "resume gap" in r else "-"
        print(f"{r['check']:<17}{r['precision']:<11}{str(r.get('on device', '-')):<8}{str(r.get('finite', '-')):<8}"
              f"{gap:<12}{r['seconds']:>6}  {'ok' if r['ok'] else 'FAILED ' + r.get('error', '')}")
    if args.out:
        Path(args.out).write_text(json.dumps({"device": name, "torch": torch.__version__, "rows": rows}, indent=2))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
