"""`python -m camp <command>`: lessons, doctor, run."""

from __future__ import annotations

import argparse
import sys


def _lessons(args: argparse.Namespace) -> int:
    from camp import course

    root = course.repo_root()
    if args.check:
        problems = course.check(root)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print(f"\nlessons/ is not in step with solutions/ ({len(problems)} problem(s)).", file=sys.stderr)
            return 1
        print("lessons/ is in step with solutions/ and leaks nothing.")
        return 0
    for path in course.release(root):
        print(f"wrote {path.relative_to(root)}")
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from camp import doctor

    return doctor.main()


def _run(args: argparse.Namespace) -> int:
    from camp import course, runner

    root = course.repo_root()
    report, runs = runner.run_all(root, args.quick, args.lesson or None)
    failed = [r for r in runs if not r.ok]
    print(f"\nreport: {report}")
    for run in failed:
        print(f"FAILED {run.lesson}: {run.error}", file=sys.stderr)
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m camp", description="Empathy Camp tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("lessons", help="regenerate lessons/ from solutions/ (nbgrader, no database)")
    p.add_argument("--check", action="store_true", help="fail if lessons/ is stale, hand-edited or leaks")
    p.set_defaults(func=_lessons)
    p = sub.add_parser("doctor", help="check this machine and show which asset each lesson will use")
    p.set_defaults(func=_doctor)
    p = sub.add_parser("run", help="execute every solution notebook into runs/<timestamp>/ with a report")
    p.add_argument("--quick", default="auto", help="1, 0 or auto (quick on CPU, full on GPU)")
    p.add_argument("--lesson", action="append", help="run only this lesson (repeatable)")
    p.set_defaults(func=_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError) as err:
        # CourseError and bad arguments: say what is wrong and what to do, without a traceback.
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
