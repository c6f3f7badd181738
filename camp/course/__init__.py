"""Course tooling: what serves the course rather than the learner (`python -m camp <command>`).

* `cli`: the `python -m camp` commands; `train_commands`: the training ones.
* `release`: the solutions/ -> lessons/ pipeline (nbgrader, no database).
* `runner`: execute notebooks with papermill and write the HTML report.
* `progress`: which graded tests pass in a learner's copies of the lessons.
* `doctor`: is this machine ready, and which model or data each lesson will use.
* `bench`: the benchmarks behind the README's figures (a package: one module per kind of bench).
"""
