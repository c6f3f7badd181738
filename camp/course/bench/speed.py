"""Speed benches: respond-mode steps of the empathy environment (`env_speed`) and RL rollouts and PPO updates,
camp's batched pieces against a naive loop (`rollout_speed`)."""

from __future__ import annotations

import platform
import time

import torch


def env_speed(batch: int = 64, steps: int = 30, seed: int = 0) -> dict:
    """Respond-mode throughput: `batch` people, each answered every step, perceived in one listener call."""

    from camp import policies
    from camp.env import BatchedEmpathy
    from camp.listener import Listener

    listener = Listener.default()
    world = BatchedEmpathy(batch, "respond", max_turns=steps + 1, listener=listener)
    said, _ = world.reset(seed=seed)
    world.step(policies.oracle(said, world.people))  # warm-up: first model call
    start = time.perf_counter()
    for _ in range(steps):
        said, *_ = world.step(policies.oracle(said, world.people))
    seconds = time.perf_counter() - start
    return {"benchmark": "env", "mode": "respond", "batch": batch, "steps": steps,
            "steps_per_s": round(steps / seconds, 2), "replies_per_s": round(steps * batch / seconds, 1),
            "device": f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"}


def _naive_rollout(policy, prompts: list[str], new_tokens: int) -> int:
    """The loop many first RL scripts write: one prompt at a time, the whole sequence re-run for every token."""
    generated = 0
    for prompt in prompts:
        ids = policy.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
        for _ in range(new_tokens):
            logits = policy.peft(input_ids=ids, use_cache=False).logits[:, -1]  # (1, V), no KV cache
            token = torch.multinomial(torch.softmax(logits / 0.7, -1), 1)
            ids = torch.cat([ids, token], dim=1)
            generated += 1
    return generated


def _naive_update(policy, optimizer, batch: dict, epochs: int) -> None:
    """PPO-shaped update one reply at a time, with logits over every position (no logits_to_keep)."""
    for _ in range(epochs):
        for i in range(len(batch["texts"])):
            q = batch["query_ids"][i][batch["query_mask"][i].bool()]
            r = batch["response_ids"][i][batch["response_mask"][i].bool()]
            ids = torch.cat([q, r])[None]
            logits, values = policy(ids, torch.ones_like(ids))  # (1, T, V) for all T positions
            logp = torch.log_softmax(logits[0, len(q) - 1:-1].float(), -1).gather(-1, r[:, None]).squeeze(-1)
            loss = -logp.mean() + 0.1 * values[0, len(q) - 1:-1].pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


def rollout_speed(batch_size: int = 8, new_tokens: int = 32, epochs: int = 2, n_minibatches: int = 2,
                  seed: int = 0) -> dict:
    """Rollout tokens/s and PPO update samples/s: camp's batched pieces against a naive loop, side by side.

    camp: `PolicyWithValue.generate` (one batched `generate` with the KV cache) and `lm.response_logprobs`
    minibatches (logits for the reply positions only). Naive: one prompt at a time, no KV cache; one reply per
    forward and backward, logits for every position. Both generate exactly `new_tokens` per reply (EOS is held
    back), so the work is the same.
    """
    from camp import data, lm, rlhf, utils

    utils.set_seed(seed)
    policy = lm.PolicyWithValue.from_pretrained("auto")
    _, heldout = rlhf.split_situations(data.load_situations())
    prompts = lm.chat_prompts(policy.tokenizer, [p.opening for p in heldout[:batch_size]])
    optimizer = torch.optim.AdamW(policy.trainable_parameters(), lr=1e-5)
    policy.generate(prompts[:2], max_new_tokens=4)  # warm-up
    timings = {}

    start = time.perf_counter()
    batch = policy.generate(prompts, max_new_tokens=new_tokens, min_new_tokens=new_tokens, temperature=0.7,
                            sentences=0)
    timings["camp_rollout_s"] = time.perf_counter() - start
    tokens = int(batch["response_mask"].sum())
    start = time.perf_counter()
    for _ in range(epochs):
        for idx in torch.randperm(batch_size).chunk(n_minibatches):
            mini = {k: v[idx] for k, v in batch.items() if torch.is_tensor(v)}
            logprobs, values, _ = lm.response_logprobs(policy, mini, 0.7)
            loss = -logprobs.mean() + 0.1 * values.pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    timings["camp_update_s"] = time.perf_counter() - start

    start = time.perf_counter()
    with torch.no_grad():
        naive_tokens = _naive_rollout(policy, prompts, new_tokens)
    timings["naive_rollout_s"] = time.perf_counter() - start
    start = time.perf_counter()
    _naive_update(policy, optimizer, batch, epochs)
    timings["naive_update_s"] = time.perf_counter() - start

    camp = {"rollout_tokens_per_s": round(tokens / timings["camp_rollout_s"], 1),
            "update_samples_per_s": round(batch_size * epochs / timings["camp_update_s"], 2)}
    naive = {"rollout_tokens_per_s": round(naive_tokens / timings["naive_rollout_s"], 1),
             "update_samples_per_s": round(batch_size * epochs / timings["naive_update_s"], 2)}
    return {"benchmark": "rl", "model": "SmolLM2-135M-Instruct + LoRA r=8 + value head", "batch_size": batch_size,
            "new_tokens_per_reply": new_tokens, "ppo_epochs": epochs, "n_minibatches": n_minibatches,
            "device": str(policy.device) if policy.device.type != "cpu"
            else f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)",
            "camp": camp, "naive": naive,
            "rollout_speedup": round(camp["rollout_tokens_per_s"] / naive["rollout_tokens_per_s"], 2),
            "update_speedup": round(camp["update_samples_per_s"] / naive["update_samples_per_s"], 2),
            "seconds": {k: round(v, 2) for k, v in timings.items()}}
