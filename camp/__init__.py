"""Empathy Camp: the library behind the notebooks. A map, in the order the lessons meet each module:

* `utils` (00): device choice, seeding, caches, atomic writes, `CampError`;
* `data` (01, 07): the emotion corpus in two registers, the situations bank and the preference corpus;
* `corpus_checks` (01, 07): the quality checks of the emotion and preference corpora;
* `models` (01, 02, 06): the MiniLM encoder and embeddings, classifiers, the SmolLM2 policy model;
* `baselines` (02, 07): majority, lexicon, TF-IDF and frozen-encoder baselines, training across registers, and a
  TF-IDF pair model of preferences;
* `metrics` (02): accuracy, macro-F1, prediction, paired bootstrap intervals;
* `train` (02): the classifier's training loop (Accelerate, checkpoints, exact resume);
* `checkpoint` (02, 05, 06): atomic, resumable checkpoints in one safetensors file;
* `viz` (02, 05, 06): training curves, confusion matrices, calibration;
* `roles` (03): the one call shape of each role: reply policy, scorer, reward, batched environment;
* `env` (03): the simulated person behind the Gymnasium API, batched, and as a scorer;
* `listener` (03): how the simulated person perceives a reply;
* `policies` (03): scripted reply policies and their evaluator;
* `widgets` (03, 04, 07): the chat playground, reward sliders and the preference rater;
* `text` (04): pure text helpers: words, n-grams, distinct-n, copied share, the crisis and dismissal patterns;
* `rewards` (04): reward terms and `RewardSpec`;
* `judge` (04, 06): an independent judge of replies, and its check;
* `rl` (05, 06, 07): the pure pieces of policy gradients and of the KL penalty;
* `rl_envs` (05): batched emotion-inference environments;
* `ppo` (05): PPO and REINFORCE loops for discrete actions;
* `lm` (06): the language-model policy (LoRA + value head), generation that ends replies at a sentence's end,
  and log-probs;
* `rlhf` (06, 07): token-level PPO with a KL penalty, its critic-free kin RLOO and GRPO, and held-out
  evaluation (best-of-n too);
* `preferences` (07): the Bradley-Terry loss, agreement with people's choices, strengths, the ratings file;
* `reward_model` (07): a reward model learned from preferences (a scorer) and its training loop;
* `dpo` (07): direct preference optimisation, on the human pairs or on the policy's own samples;
* `safety` (08): the safety filter around any reply policy (its detectors are `text`'s);
* `audit` (08): the bias probe and the blinded rubric;
* `export` (08): merged, quantised export and its comparison.

Course tooling (release pipeline, runner, progress, doctor, CLI, benchmarks) lives apart, in `camp.course`.
"""

__version__ = "0.1.0"
