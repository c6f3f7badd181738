"""Benches that score rather than time: the scripted policies' returns (`scripted_policies`) and where int8
costs perplexity (`int8`, lesson 08)."""

from __future__ import annotations

import time

import numpy as np

from camp.course.bench.machine import machine_info


def scripted_policies(episodes: int = 200, seed: int = 0) -> dict:
    """Mean episode return (and spread) of the scripted policies over the same seeded people."""
    from camp import data, policies
    from camp.listener import Listener

    listener = Listener.default()
    pool = list(data.load_emotions("offline", verbose=False)["train"]["text"])
    candidates = {"reflective listening": policies.reflective(listener.classify),
                  "random replies": policies.random_replies(pool, np.random.default_rng(seed + 1)),
                  "dismissive": policies.dismissive(np.random.default_rng(seed + 2)),
                  "oracle (told the emotion)": policies.oracle}
    out = {}
    for name, policy in candidates.items():
        r = policies.evaluate_policy(policy, episodes=episodes, seed=seed, listener=listener)
        out[name] = {"mean_return": round(r["mean"], 3), "std": round(r["std"], 3), "sem": round(r["sem"], 3)}
    return {"benchmark": "policies", "episodes": episodes, "seed": seed, "max_turns": 6, "results": out}


def int8(people: int = 16) -> dict:
    """Lesson 08's question about int8: where does the perplexity go? SmolLM2-135M-Instruct (the reference, no
    adapters), perplexity of a reply a person wrote (lesson 07's corpus) to each of `people` held-out people,
    spread over the six emotions, with one part at a time quantised (`camp.export.int8_sensitivity`)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from camp import data, export, lm, models, rlhf

    path = models.policy_path("auto")
    model, tokenizer = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    _, heldout = rlhf.split_situations(data.load_situations())
    chosen = {pair.situation_id: pair.chosen for pair in data.load_preferences()}
    shown = [p for p in heldout if p.id in chosen][::max(len(heldout) // people, 1)][:people]
    start = time.perf_counter()
    rows = export.int8_sensitivity(model, tokenizer, lm.chat_prompts(tokenizer, [p.opening for p in shown]),
                                   [chosen[p.id] for p in shown])
    parts = [r for r in rows if r["part"] in ("attention", "mlp")]
    return {"benchmark": "int8", "model": "SmolLM2-135M-Instruct", "people": len(shown),
            "quantiser": "torch dynamic int8, per-channel weights, one activation scale per tensor; lm_head in float",
            "rows": rows, "sum_of_single_part_increases": {part: round(sum(r["increase"] for r in parts
                                                                            if r["part"] == part), 3)
                                                            for part in ("attention", "mlp")},
            "largest": sorted(parts, key=lambda r: -r["increase"])[:5], "seconds": round(time.perf_counter() - start, 1),
            "machine": machine_info(), "date": time.strftime("%Y-%m-%d")}
