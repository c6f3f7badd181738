"""`python -m camp <command>`: lessons, doctor, run, keep-run, progress, train-classifier, train-reward, train-rlhf,
train-dpo, bench. The training commands live in `camp.course.train_commands`, the benches in `camp.course.bench`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from camp.course import train_commands
from camp.utils import CampError


def _lessons(args: argparse.Namespace) -> int:
    from camp.course import release

    root = release.repo_root()
    if args.check:
        problems = release.check(root)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print(f"\nlessons/ is not in step with solutions/ ({len(problems)} problem(s)).", file=sys.stderr)
            return 1
        print("lessons/ is in step with solutions/ and leaks nothing.")
        return 0
    for path in release.release(root):
        print(f"wrote {path.relative_to(root)}")
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from camp.course import doctor

    return doctor.main()


def _run(args: argparse.Namespace) -> int:
    from camp.course import release, runner

    root = release.repo_root()
    report, runs = runner.run_all(root, args.quick, args.lesson or None)
    failed = [r for r in runs if not r.ok]
    print(f"\nreport: {report}")
    if args.keep:
        runner.keep([report.parent], root / "benchmarks" / "lessons.json")
        print(f"kept the passing lessons' run times in {root / 'benchmarks' / 'lessons.json'}")
    for run in failed:
        print(f"FAILED {run.lesson}: {run.error}", file=sys.stderr)
    return 1 if failed else 0


def _time_autograde(args: argparse.Namespace) -> int:
    from camp.course import classroom
    from camp.utils import atomic_write_bytes

    result = classroom.time_autograde(args.lessons)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        atomic_write_bytes(args.out, (text + "\n").encode())
    return 0


def _keep_run(args: argparse.Namespace) -> int:
    from camp.course import release, runner

    kept = release.repo_root() / "benchmarks" / "lessons.json"
    table = runner.keep([Path(f) for f in args.folders], kept, note=args.note)
    print(f"{kept}: " + "; ".join(f"{mode} {len(table[mode])} lessons" for mode in ("quick", "full")))
    return 0


def _compare_runs(args: argparse.Namespace) -> int:
    import json

    from camp.course import runner
    from camp.utils import atomic_write_bytes

    report = runner.compare_runs(Path(args.before), Path(args.after))
    for lesson, r in report.items():
        print(f"{lesson}: key figures {'identical' if r['figures_identical'] else 'DIFFER'}, "
              f"{r['text_outputs_differing']} of {r['text_outputs'][0]} text outputs differ (times aside)")
    if args.out:
        atomic_write_bytes(args.out, (json.dumps({"before": args.before, "after": args.after, "lessons": report},
                                                 indent=2, ensure_ascii=False) + "\n").encode())
    return 0


def _progress(args: argparse.Namespace) -> int:
    import json

    from camp.course import progress

    folder = Path(args.dir) if args.dir else progress.default_folder()
    results = progress.collect(folder, args.lesson, saved=args.saved, timeout=args.timeout,
                               echo=lambda line: print(line, file=sys.stderr, flush=True))
    if args.json:
        print(json.dumps(progress.to_json(results, folder, args.saved), indent=2))
    else:
        print(progress.format_report(results, folder, args.saved))
    return 0


def _bench(args: argparse.Namespace) -> int:
    from camp.course import bench

    return bench.main(args)


def _add_course_commands(sub) -> None:
    """The commands that build, run and check the course: lessons, doctor, run, time-autograde, keep-run, progress."""
    p = sub.add_parser("lessons", help="regenerate lessons/ from solutions/ (nbgrader, no database)")
    p.add_argument("--check", action="store_true", help="fail if lessons/ is stale, hand-edited or leaks")
    p.set_defaults(func=_lessons)
    p = sub.add_parser("doctor", help="check this machine and show which asset each lesson will use")
    p.set_defaults(func=_doctor)
    p = sub.add_parser("run", help="execute every solution notebook into runs/<timestamp>/ with a report")
    p.add_argument("--quick", default="auto", help="1 (quick), 0 (full), smoke (CI's size: every cell "
                   "runs, tiny) or auto (quick on CPU, full on GPU)")
    p.add_argument("--lesson", action="append", help="run only this lesson, like 03 (repeatable or a comma list)")
    p.add_argument("--keep", action="store_true", help="copy the passing lessons' run times into "
                   "benchmarks/lessons.json (the README quotes them): run with nothing else on the machine")
    p.set_defaults(func=_run)
    p = sub.add_parser("time-autograde", help="time nbgrader autograde of one submission (the reference answers) "
                       "per lesson; run with nothing else on the machine")
    p.add_argument("lessons", nargs="+", help="lessons, like 02 06 07")
    p.add_argument("--out", help="also write the JSON here (benchmarks/autograde.json)")
    p.set_defaults(func=_time_autograde)
    p = sub.add_parser("keep-run", help="copy the run times of earlier `run` reports into benchmarks/lessons.json")
    p.add_argument("folders", nargs="+", help="run folders, runs/<timestamp>/")
    p.add_argument("--note", help="kept beside each time: what has changed in the lesson since that run, if anything")
    p.set_defaults(func=_keep_run)
    p = sub.add_parser("compare-runs", help="key figures and text outputs of two `run` folders, lesson by lesson")
    p.add_argument("before", help="a run folder, runs/<timestamp>/")
    p.add_argument("after", help="another, of the same lessons and mode")
    p.add_argument("--out", help="also write the comparison as JSON here")
    p.set_defaults(func=_compare_runs)
    p = sub.add_parser("progress", help="which graded tests pass in your copies of the lessons (runs each "
                       "notebook in smoke size as nbgrader does, or reads saved outputs with --saved)")
    p.add_argument("--dir", help="folder with your lesson notebooks, NN_name/NN_name.ipynb (default: lessons/)")
    p.add_argument("--lesson", action="append", help="only this lesson, like 03 (repeatable or a comma list)")
    p.add_argument("--saved", action="store_true", help="run nothing: read the outputs saved in the notebooks")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--timeout", type=int, default=1800, help="seconds each cell may run before it is interrupted")
    p.set_defaults(func=_progress)


def _add_bench_command(sub) -> None:
    """`bench WHAT` and its flags; each WHAT is a key of `camp.course.bench.COMMANDS`."""
    p = sub.add_parser("bench", help="benchmarks: classifier (camp loop vs HF Trainer), registers (train on one "
                       "register of the corpus, test on both), env (respond-mode "
                       "steps/s at batch 64), policies (scripted policies' returns over 200 episodes), rl (rollout "
                       "tokens/s and PPO update samples/s, batched with KV cache vs a naive loop), prefs (lesson 07: the reference, "
                       "best-of-4, PPO, RLOO and DPO at an equal budget, measured on 72 held-out people), prefs-timing (seconds per "
                       "training step of each prefs method, side by side in one process, as ratios to PPO), int8 "
                       "(lesson 08: the perplexity cost of int8, one decoder part quantised at a time), class-weights (lesson 02: "
                       "fine-tuning with and without lesson 01's balanced class weights)")
    p.add_argument("what", choices=("classifier", "registers", "class-weights", "env", "policies", "rl", "prefs", "prefs-timing", "int8"))
    p.add_argument("--steps", type=int, help="optimizer steps per run (classifier: 400 = 3.2 epochs of the narrative "
                   "register; registers: 190, lesson 02's quick budget; prefs-timing: 3, the first left out)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, help="peak learning rate, the same for every run (classifier: 1e-4; "
                   "registers: 2e-4)")
    p.add_argument("--seeds", type=int, nargs="+", help="one run of each loop per seed (classifier: 0 1 2; "
                   "registers: 0 1)")
    p.add_argument("--out", help="also write the JSON here")
    p.add_argument("--reward-model", help="prefs: the reward model folder (DIR/model from train-reward)")
    p.add_argument("--budget", type=int, default=480, help="prefs: training replies per method (480: lesson 06's "
                   "PPO, 20 steps of 24)")
    p.add_argument("--eval-samples", type=int, default=2, help="prefs: replies per held-out person")
    p.add_argument("--methods", nargs="+", help="prefs: only these methods (the reference always runs)")
    p.add_argument("--work", help="prefs: folder keeping each finished (method, seed), reused on a rerun "
                   "(default runs/bench-prefs)")
    p.set_defaults(func=_bench)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m camp", description="Empathy Camp tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_course_commands(sub)
    train_commands.add_parsers(sub)
    _add_bench_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)[1:]
    try:
        return args.func(args)
    except (CampError, FileNotFoundError) as err:
        # Bad input or state the user can fix (and a missing file): say what is wrong and what to do. Anything
        # else is a bug and keeps its traceback.
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
