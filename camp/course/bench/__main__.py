"""`python -m camp.course.bench WHAT [flags]`: the same as `python -m camp bench WHAT [flags]`."""

from __future__ import annotations

import sys

from camp.course import cli

if __name__ == "__main__":  # pytest's --doctest-modules imports this module: run nothing then
    sys.exit(cli.main(["bench", *sys.argv[1:]]))
