"""Repository hygiene: output-free notebooks, lint-clean code and notebooks, papermill parameters, and the
library's architecture (no borrowed private names, small modules and functions, a module map with floors)."""

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import LESSONS, SOLUTIONS

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = BIN / name
    return str(path) if path.exists() else (shutil.which(name) or pytest.skip(f"{name} not installed"))


def test_notebooks_are_committed_without_outputs():
    cmd = [_tool("nbstripout"), "--verify",
           "--extra-keys", "metadata.papermill cell.metadata.papermill cell.metadata.execution",
           *map(str, SOLUTIONS + LESSONS)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 0, f"notebooks carry outputs; run nbstripout on them:\n{out.stdout}{out.stderr}"


def test_ruff_is_clean_on_code_and_notebooks():
    out = subprocess.run([_tool("ruff"), "check", "camp", "tests", "solutions", "lessons"], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("notebook", SOLUTIONS, ids=[p.parent.name for p in SOLUTIONS])
def test_each_lesson_states_budget_and_has_quick_parameter(notebook):
    nb = nbformat.read(notebook, 4)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and "QUICK" in params[0].source
    assert nb.cells.index(params[0]) <= 4, "the parameters cell belongs near the top"
    assert "Run-time budget" in nb.cells[0].source, "the first cell states the CPU and GPU run-time budget"
    assert "google.colab" in nb.cells[1].source, "the second cell installs camp on Colab only"


def test_the_readme_lesson_table_is_one_table_with_every_lesson():
    # A blank line inside a Markdown table ends it: the table once rendered as three pieces.
    lines = (ROOT / "README.md").read_text().splitlines()
    rows = [i for i, line in enumerate(lines) if line.startswith("| [") and "lessons/" in line]
    assert rows == list(range(rows[0], rows[0] + len(rows))), "the lesson table has a gap; remove blank lines in it"
    assert lines[rows[0] - 1].startswith("|---") and len(rows) == len(SOLUTIONS), (len(rows), len(SOLUTIONS))


def test_the_readme_lesson_times_are_the_kept_ones():
    # Each time in the lesson table is a `python -m camp run` report's, kept in benchmarks/lessons.json with the
    # run it came from; a lesson with no kept time says so instead of quoting one.
    import json
    import re

    kept = json.loads((ROOT / "benchmarks" / "lessons.json").read_text())
    wrong = []
    for line in (ROOT / "README.md").read_text().splitlines():
        found = re.match(r"\| \[(\d\d) [^]]*\]\(lessons/([^/]+)/", line)
        if not found:
            continue
        lesson, cells = found.group(2), [c.strip() for c in line.strip("|").split(" | ")]
        for mode, cell in (("quick", cells[2]), ("full", cells[3])):
            want = f"{kept[mode][lesson]['seconds']:.1f} s" if lesson in kept[mode] else "not measured"
            if not cell.startswith(want):
                wrong.append(f"{lesson} {mode}: README says {cell!r}, benchmarks/lessons.json gives {want!r}")
    assert wrong == [], "\n".join(wrong)


@pytest.mark.parametrize("notebook", SOLUTIONS, ids=[p.parent.name for p in SOLUTIONS])
def test_each_lesson_quotes_its_kept_run_times(notebook):
    # The run-time budget ends with what `python -m camp run --keep` measured (benchmarks/lessons.json), or says a
    # mode has not been measured; estimates may stand beside it, a measured figure must be the kept one.
    import json
    import re

    kept = json.loads((ROOT / "benchmarks" / "lessons.json").read_text())
    first = nbformat.read(notebook, 4).cells[0].source
    budget = first[first.index("**Run-time budget:**"):].split("\n\n")[0].replace("\n", " ")
    lesson = notebook.parent.name
    for mode in ("quick", "full"):
        quoted = re.search(rf"{mode} (\d+\.\d) s", budget)
        if lesson in kept[mode]:
            assert quoted and float(quoted.group(1)) == kept[mode][lesson]["seconds"], \
                f"{lesson}: say '{mode} {kept[mode][lesson]['seconds']} s' (benchmarks/lessons.json): {budget}"
        else:
            assert not quoted and f"{mode} mode not measured" in budget, \
                f"{lesson}: no kept {mode} run, so say '{mode} mode not measured': {budget}"


def test_every_try_it_prompt_has_a_collapsible_answer():
    import json

    bare = [f"{path.parent.name} cell {i}" for path in SOLUTIONS
            for i, cell in enumerate(json.loads(path.read_text())["cells"])
            if cell["cell_type"] == "markdown" and "**Try it.**" in "".join(cell["source"])
            and "<details><summary>" not in "".join(cell["source"])]
    assert bare == [], f"Try-it prompts without an answer: {bare}"


def test_every_further_reading_entry_is_linked():
    import json
    import re

    unlinked = []
    for path in SOLUTIONS:
        for cell in json.loads(path.read_text())["cells"]:
            text = "".join(cell["source"])
            if cell["cell_type"] != "markdown" or "## Further reading" not in text:
                continue
            entries = re.split(r"\n\* ", "\n" + text.split("## Further reading", 1)[1].strip())[1:]
            unlinked += [f"{path.parent.name}: {e[:60]}" for e in entries if "](http" not in e]
    assert unlinked == [], unlinked


def test_every_citation_in_a_lesson_is_in_its_linked_reading_list():
    # "Author et al. (2020)" in the text must have its linked entry under the lesson's Further reading.
    import json
    import re

    cited = re.compile(r"([A-Z][a-zA-Z\-]+)(?: et al\.| (?:&|and) [A-Z][a-zA-Z\-]+)?,? \(?((?:19|20)\d\d)\b")
    missing = []
    for path in SOLUTIONS:
        body, reading = "", ""
        for cell in json.loads(path.read_text())["cells"]:
            text = "".join(cell["source"]) if cell["cell_type"] == "markdown" else ""
            head, _, tail = text.partition("## Further reading")
            body, reading = body + head, reading + tail
        missing += [f"{path.parent.name}: {m.group(1)} {m.group(2)}" for m in cited.finditer(body)
                    if m.group(1) not in reading]
    assert missing == [], missing


# Where each README figure comes from: a `<!-- figures: SOURCE ... -->` line before a paragraph or table names its
# sources, and every decimal figure in that block must be found there. SOURCE is a JSON kept under benchmarks/
# (the figure is one of its numbers, or a difference, ratio or percentage of two), `lessons:MODE/LESSON` (that
# lesson's kept run time and key figures in benchmarks/lessons.json), or `tests/FILE.py::TEST` (a test that
# asserts the figure within a band). A block whose figures are not backed yet is tagged `unbacked:NAME`, and NAME
# must be listed here with the reason and what would back it; the list only shrinks.
README_UNBACKED = {
}


def _numbers(value, into: list, long_lists: bool = False) -> list:
    """Every number in a kept JSON (numbers inside strings too); long per-reply score lists are left out, so a
    figure cannot match one by chance."""
    import re

    if isinstance(value, dict):
        for v in value.values():
            _numbers(v, into)
    elif isinstance(value, list):
        if long_lists or len(value) <= 24 or not all(isinstance(v, int | float) for v in value):
            for v in value:
                _numbers(v, into)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        into.append(float(value))
    elif isinstance(value, str):
        into.extend(float(m) for m in re.findall(r"-?\d+\.\d+(?:e-?\d+)?|-?\d+", value))
    return into


def _source_numbers(source: str) -> list[float] | None:
    import json

    if source.startswith("tests/"):
        path, _, name = source.partition("::")
        assert (ROOT / path).is_file() and f"def {name}(" in (ROOT / path).read_text(), f"no test {source}"
        return None
    if source.startswith("lessons:"):
        mode, _, lesson = source.removeprefix("lessons:").partition("/")
        kept = json.loads((ROOT / "benchmarks" / "lessons.json").read_text())[mode]
        assert lesson in kept, f"{source}: no kept {mode} run of {lesson} in benchmarks/lessons.json"
        return _numbers([kept[lesson]["seconds"], kept[lesson].get("figures", {})], [])
    assert (ROOT / source).is_file(), f"no file {source}"
    return _numbers(json.loads((ROOT / source).read_text()), [])


def _found(figure: str, pool: list[float]) -> bool:
    text = figure.replace("−", "-").lstrip("+-").replace(",", "")
    mantissa, _, exponent = text.partition("e")
    places = len(mantissa.split(".")[1]) - (int(exponent) if exponent else 0)
    want = float(text)

    def same(x: float) -> bool:
        return abs(round(abs(x), places) - want) < 10 ** (-places) / 2 + 1e-12

    if any(same(x) or same(100 * x) or same(x / 60) or (x > 0 and same(x ** 0.5)) for x in pool):
        return True
    small = pool[:400]
    return any(same(a - b) or (b and same(a / b)) for a in small for b in small)


def test_every_readme_figure_names_its_source():
    import re

    lines = (ROOT / "README.md").read_text().splitlines()
    figure = re.compile(r"(?<![\w.\-/])[−+-]?\d+\.\d+(?:e-?\d+)?(?![\w/]|\.\w)")
    problems, sources, code, used = [], None, False, set()
    for number, line in enumerate(lines, 1):
        if line.startswith("```"):
            code = not code
        tag = re.fullmatch(r"<!-- figures: (.+) -->", line.strip())
        if tag:
            names = tag.group(1).split()
            used.update(n.removeprefix("unbacked:") for n in names if n.startswith("unbacked:"))
            sources = [None if n.startswith("unbacked:") else _source_numbers(n) for n in names]
            continue
        if not line.strip():
            sources = None
            continue
        if code:
            continue
        for found in figure.finditer(line.replace("CC BY 4.0", "the licence")):
            if sources is not None:
                pools = [p for p in sources if p is not None]
                if pools and not any(_found(found.group(), p) for p in pools):
                    problems.append(f"README line {number}: {found.group()} is not in the block's sources")
                continue
            problems.append(f"README line {number}: {found.group()} has no source: tag its block "
                            f"(<!-- figures: ... -->): {line.strip()[:80]}")
    assert problems == [], "\n".join(problems)
    assert used == set(README_UNBACKED), f"unbacked blocks and the list differ: {used ^ set(README_UNBACKED)}"


def test_a_stale_key_in_the_durations_table_stops_the_suite(tmp_path):
    # A copy of tests/conftest.py beside one test, its DURATIONS table replaced: one real key, one planted key
    # that names no test (as a rename leaves behind). Collecting the whole folder must fail and name the key.
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_one.py").write_text("def test_a():\n    assert True\n")
    conftest = (ROOT / "tests" / "conftest.py").read_text()
    planted = "tests/test_one.py::test_renamed_long_ago"

    def run(durations: dict, *args: str) -> subprocess.CompletedProcess:
        (tests / "conftest.py").write_text(f"{conftest}\nDURATIONS = {durations!r}\n")
        return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)

    stale = run({"tests/test_one.py::test_a": 3, planted: 5})
    assert stale.returncode != 0 and planted in stale.stdout + stale.stderr, stale.stdout + stale.stderr
    assert "rename or drop these keys" in stale.stdout + stale.stderr
    assert run({"tests/test_one.py::test_a": 3}).returncode == 0  # every key names a test: the suite runs
    # one file named on the command line collects part of the suite: nothing to check against, so it runs
    assert run({"tests/test_one.py::test_a": 3, planted: 5}, "tests/test_one.py").returncode == 0


# ---------------------------------------------------------------------------------------------------- architecture
CAMP = Path(__file__).resolve().parents[1] / "camp"
MODULES = sorted(CAMP.rglob("*.py"))


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(CAMP.parent).with_suffix("").parts).removesuffix(".__init__")


def _borrowed_private_names(name: str, source: str) -> list[str]:
    """`from camp.x import _y` and `x._y` (x a camp module) in one module's source."""
    tree, borrowed, imported = ast.parse(source), [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("camp"):
            borrowed += [f"{name}: from {node.module} import {a.name}" for a in node.names
                         if a.name.startswith("_") and not a.name.startswith("__")]
            imported.update({a.asname or a.name: f"{node.module}.{a.name}" for a in node.names})
        elif isinstance(node, ast.Import):
            imported.update({a.asname or a.name: a.name for a in node.names if a.name.startswith("camp")})
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.attr.startswith("_")
                and not node.attr.startswith("__") and imported.get(node.value.id, "").startswith("camp")):
            borrowed.append(f"{name}:{node.lineno}: {node.value.id}.{node.attr}")
    return borrowed


def test_no_module_reaches_into_another_modules_private_names():
    # A private name is the module's own business: `from camp.x import _y` or `x._y` in another module means the
    # two share a piece that should be public (the loop core was born of `reward_model` importing `train._resume`).
    borrowed = [b for path in MODULES for b in _borrowed_private_names(path.name, path.read_text())]
    assert not borrowed, borrowed
    # The check can fail: both forms are caught, and a public name or a non-camp module is not.
    caught = _borrowed_private_names("bad.py", "from camp.train import _resume\nfrom camp import rlhf\n"
                                               "import numpy as np\nrlhf._rollout(np._NoValue, rlhf.rollout)\n")
    assert caught == ["bad.py: from camp.train import _resume", "bad.py:4: rlhf._rollout"]


def _long_functions() -> list[str]:
    """Functions over 60 lines that do not say why in a `# long:` comment on their first line."""
    found = []
    for path in MODULES:
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
                if length > 60 and "# long:" not in "\n".join(lines[first - 1:node.body[0].lineno]):
                    found.append(f"{_module_name(path)}.{node.name}: {length} lines")
    return found


def test_modules_and_functions_stay_small():
    # Every module at most 400 lines and every function at most 60, or a `# long:` comment on its signature says
    # why: past that, a reader cannot hold a module or a function in their head.
    big = [f"{_module_name(p)}: {n} lines" for p in MODULES if (n := len(p.read_text().splitlines())) > 400]
    assert not big, big
    assert not _long_functions(), _long_functions()


def test_the_module_map_lists_every_module_with_its_floor():
    import camp

    listed = set(re.findall(r"^\* `([a-z_.]+)` \(floor (\d+)", camp.__doc__, re.M))
    names = {_module_name(p).removeprefix("camp.") for p in MODULES if p.parent == CAMP}
    names -= {"camp", "__main__"}
    assert {n for n, _ in listed} == names, names ^ {n for n, _ in listed}
    # and no module imports one on a higher floor
    floor = {n: int(f) for n, f in listed}
    upward = []
    for path in MODULES:
        if path.parent != CAMP or _module_name(path).removeprefix("camp.") not in floor:
            continue
        me = _module_name(path).removeprefix("camp.")
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("camp."):
                targets = [node.module.split(".")[1]]
            elif isinstance(node, ast.ImportFrom) and node.module == "camp":
                targets = [a.name for a in node.names]
            upward += [f"{me} ({floor[me]}) imports {t} ({floor[t]})" for t in targets
                       if t in floor and floor[t] > floor[me]]
    assert not upward, upward
