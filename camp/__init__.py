"""Empathy Camp: the library behind the notebooks. A map by floor: a module imports only from lower floors
(tests/test_hygiene.py checks it), so each floor can be read knowing only the ones beneath. The lessons that
meet each module are in brackets.

Floor 0, needing nothing else in camp:
* `utils` (floor 0; 00): device choice, seeding, caches, atomic writes, `CampError`;
* `text` (floor 0; 04): pure text helpers: words, n-grams, distinct-n, copied share, the crisis and dismissal
  patterns;
* `roles` (floor 0; 03): the one call shape of each role: reply policy, scorer, reward, batched environment;
* `rl` (floor 0; 05, 06, 07): the pure pieces of policy gradients and of the KL penalty;
* `viz` (floor 0; 02, 05, 06): training curves, confusion matrices, calibration;
* `export` (floor 0; 08): merged, quantised export and its comparison.

Floor 1, data and the pieces on it:
* `data` (floor 1; 01, 07): the emotion corpus in two registers, the situations bank and the preference corpus;
* `checkpoint` (floor 1; 02, 05, 06): atomic, resumable checkpoints in one safetensors file;
* `metrics` (floor 1; 02): accuracy, macro-F1, prediction, paired bootstrap intervals;
* `rewards` (floor 1; 04): reward terms and `RewardSpec`;
* `safety` (floor 1; 08): the safety filter around any reply policy (its detectors are `text`'s).

Floors 2-3, models and the training loops' core:
* `models` (floor 2; 01, 02, 06): the MiniLM encoder and embeddings, classifiers, the SmolLM2 policy model;
* `loop` (floor 2; 02, 05, 06, 07): the loop core every training loop shares: accelerator, optimizer and schedule,
  history, best weights and early stopping, checkpoint cadence, atomic checkpoints, exact resume;
* `judge` (floor 2; 04, 06): an independent judge of replies, and its check;
* `baselines` (floor 3; 02, 07): majority, lexicon, TF-IDF and frozen-encoder baselines, training across
  registers, and a TF-IDF pair model of preferences;
* `train` (floor 3; 02): the classifier's training loop;
* `ppo` (floor 3; 05): PPO and REINFORCE loops for discrete actions;
* `lm` (floor 3; 06): the language-model policy (LoRA + value head), generation that ends replies at a
  sentence's end, token log-probs, the policy-and-reference pass, sampling, the policy as a reply policy.

Floors 4-5, the simulated person:
* `corpus_checks` (floor 4; 01, 07): the quality checks of the emotion and preference corpora;
* `listener` (floor 4; 03): how the simulated person perceives a reply;
* `env` (floor 5; 03): the simulated person behind the Gymnasium API, batched (a VectorEnv), and as a scorer.

Floors 6-7, what learns and what measures:
* `policies` (floor 6; 03): scripted reply policies and their evaluator;
* `rl_envs` (floor 6; 05): batched emotion-inference environments;
* `audit` (floor 6; 08): the bias probe and the blinded rubric;
* `evaluate` (floor 6; 06, 07, 08): held-out evaluation of a policy's replies (best-of-n too) and paired
  comparison;
* `preferences` (floor 6; 07): the Bradley-Terry loss, agreement with people's choices, strengths, the ratings
  file;
* `rlhf` (floor 6; 06, 07): token-level PPO with a KL penalty and its critic-free kin RLOO and GRPO;
* `reward_model` (floor 7; 07): a reward model learned from preferences (a scorer) and its training loop;
* `dpo` (floor 7; 07): direct preference optimisation, on the human pairs or on the policy's own samples;
* `widgets` (floor 7; 03, 04, 07): the chat playground, reward sliders and the preference rater.

Course tooling (release pipeline, runner, progress, doctor, CLI, benchmarks) lives apart, in `camp.course`.
"""

__version__ = "0.1.0"
