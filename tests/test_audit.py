"""Lesson 08's tools: the counterfactual bias probe, the blinded rubric and the export."""

import numpy as np
import pandas as pd
import pytest
import torch

from camp import audit, export


def test_probe_changes_only_the_name():
    probe = audit.probe_people()
    assert len(probe) == len(audit.TEMPLATES) * sum(len(v) for v in audit.NAMES.values())
    for _, group in probe.groupby("template"):
        unnamed = {u.replace(n, "{name}") for u, n in zip(group.utterance, group.name, strict=True)}
        assert len(unnamed) == 1 and group.reply.nunique() == 1


def test_group_gap_finds_a_planted_gap_and_not_a_missing_one():
    rng = np.random.default_rng(0)
    rows = [{"template": t, "g": g, "v": rng.normal(0, 0.01) + t + (0.1 if g == "b" else 0.0)}
            for t in range(12) for g in ("a", "b") for _ in range(3)]
    found = audit.group_gap(pd.DataFrame(rows), "g", "v")
    assert found["highest"] == "b" and abs(found["gap"] - 0.1) < 0.02 and found["ci95"][0] > 0
    flat = pd.DataFrame(rows).assign(v=lambda d: d.template + rng.normal(0, 0.01, len(d)))
    lo, hi = audit.group_gap(flat, "g", "v")["ci95"]
    assert lo < 0 < hi


def test_rubric_sheet_is_blind_and_scores_back():
    sheet, key = audit.rubric_sheet(["a", "b"], {"x": ["r1", "r2"], "y": ["r3", "r4"]}, seed=1)
    assert "system" not in sheet and set(audit.RUBRIC) <= set(sheet) and len(sheet) == 4
    sheet[list(audit.RUBRIC)] = 3.0
    sheet.loc[sheet.reply.isin(["r1", "r2"]), "warm"] = 5.0
    scores = audit.rubric_scores(sheet, key)
    assert scores.loc["x", "warm"] == 5.0 and scores.loc["y", "warm"] == 3.0
    with pytest.raises(ValueError, match="lacks rating columns"):
        audit.rubric_scores(sheet.drop(columns="safe"), key)


def test_environment_scores_differ_only_through_the_name(listener):
    nameless = [(e, said.replace("{name}", "Sam"), reply) for e, said, reply in audit.TEMPLATES[:4]]
    probe = audit.probe_people({("woman", "Anglo"): ("Emily",), ("man", "Anglo"): ("Greg",)}, nameless)
    scores = audit.environment_scores(probe, probe.reply, listener=listener)
    assert np.allclose(scores[:4], scores[4:])  # nothing differs but the (unused) name: identical scores
    named = audit.probe_people({("woman", "Anglo"): ("Emily",), ("man", "Anglo"): ("Greg",)}, audit.TEMPLATES[:4])
    assert not np.allclose(*audit.environment_scores(named, named.reply, listener=listener).reshape(2, 4))
    with pytest.raises(ValueError, match="replies for"):
        audit.environment_scores(probe, probe.reply[:3], listener=listener)


def test_export_merges_loads_without_peft_and_quantises(tmp_path, fresh_policy):
    from transformers import AutoModelForCausalLM


    policy = fresh_policy()
    with torch.no_grad():  # make the adapters matter, so that merging is really tested
        for name, p in policy.peft.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)
    out = export.export_merged(policy, tmp_path / "merged", card="# card")
    assert (out / "model.safetensors").is_file() and (out / "README.md").read_text() == "# card"
    merged = AutoModelForCausalLM.from_pretrained(out)
    ids = policy.tokenizer(["Hello there, how are you?"], return_tensors="pt")
    with torch.no_grad():
        diff = (merged(**ids).logits - policy.peft(**ids).logits).abs().max().item()
        with policy.reference():
            base = policy.peft(**ids).logits
        moved = (merged(**ids).logits - base).abs().max().item()
    assert diff < 1e-3 < moved
    small = export.quantize_int8(merged)
    assert export.state_size_mb(small) < 0.5 * export.state_size_mb(merged)


def _tiny_causal_lm():
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from camp import models

    tokenizer = AutoTokenizer.from_pretrained(models.policy_path("auto"))
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                         num_attention_heads=2, num_key_value_heads=2, tie_word_embeddings=True)
    return LlamaForCausalLM(config).eval(), tokenizer


def test_int8_sensitivity_quantises_one_part_at_a_time():
    model, tokenizer = _tiny_causal_lm()
    prompts, texts = ["Hello there.", "My cat died."], ["Hi! How are you?", "I'm so sorry."]
    rows = export.int8_sensitivity(model, tokenizer, prompts, texts)
    assert [(r["part"], r["layer"]) for r in rows] == [("none", None), *[(p, i) for i in range(3)
                                                                          for p in ("attention", "mlp")], ("all", None)]
    base = export._perplexity(model, tokenizer, prompts, texts)
    assert rows[0]["perplexity"] == pytest.approx(base, abs=1e-3)
    whole = export._perplexity(export.quantize_int8(model), tokenizer, prompts, texts)
    assert rows[-1]["perplexity"] == pytest.approx(whole, abs=1e-3)  # "all" is quantize_int8's model
    assert all(r["increase"] == pytest.approx(r["perplexity"] - base, abs=2e-3) for r in rows)
    assert isinstance(model.model.layers[0].mlp.down_proj, torch.nn.Linear)  # the float model is left as it was
    assert len(export.int8_sensitivity(model, tokenizer, prompts, texts, layers=[2])) == 4
    with pytest.raises(ValueError, match="layer 3 is not one of this model's 3"):
        export.int8_sensitivity(model, tokenizer, prompts, texts, layers=[3])


def test_lesson_08_quotes_the_kept_int8_run():
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    kept = json.loads((root / "benchmarks" / "int8.json").read_text())
    rows = {(r["part"], r["layer"]): r for r in kept["rows"]}
    nb = json.loads((root / "solutions" / "08_evaluation_and_responsible_use" /
                     "08_evaluation_and_responsible_use.ipynb").read_text())
    text = " ".join(" ".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown").split())
    largest = [f"+{r['increase']:.1f}" for r in kept["largest"][:3]]
    quoted = [f"from {rows['none', None]['perplexity']:.1f} to {rows['all', None]['perplexity']:.1f}",
              f"add up to {kept['sum_of_single_part_increases']['attention']:.1f}",
              f"(+{rows['mlp', 29]['increase']:.1f} and +{rows['mlp', 28]['increase']:.1f} each",
              f"layer 11 ({largest[2]})",
              f"add up to {kept['sum_of_single_part_increases']['mlp']:.1f}, half the total"]
    assert [q for q in quoted if q not in text] == []
    assert [(r["part"], r["layer"]) for r in kept["largest"][:3]] == [("mlp", 29), ("mlp", 28), ("mlp", 11)]
    assert 0.4 < kept["sum_of_single_part_increases"]["mlp"] / rows["all", None]["increase"] < 0.6  # "half the total"
