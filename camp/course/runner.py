"""`python -m camp run`: execute every solution notebook with papermill and write an HTML report.

The report, runs/<timestamp>/index.html, lists each lesson with its status, run time and key figure
(the value a lesson shows with `camp.utils.key_figure`); report.json beside it holds the same for programs.
`keep` copies a report's passing lessons into benchmarks/lessons.json, the run times the README quotes.
The tests use `execute` too.
"""

from __future__ import annotations

import html
import json
import os
import platform
import re
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import nbformat
import torch
from traitlets.config import Config

from camp.course import release
from camp.utils import KEY_FIGURE_MIME


@dataclass
class LessonRun:
    """What happened when one notebook ran."""

    lesson: str
    ok: bool
    seconds: float
    output: Path
    quick: bool | str  # True (quick), False (full) or "smoke"
    error: str = ""
    figures: list[dict] = field(default_factory=list)

    @property
    def mode(self) -> str:
        return mode_name(self.quick)


def mode_name(quick: bool | str) -> str:
    """"smoke", "quick" or "full" for a resolved QUICK value."""
    return "smoke" if quick == "smoke" else "quick" if quick else "full"


def resolve_quick(value: str | bool | None) -> bool | str:
    """The lessons' QUICK parameter: True (quick), False (full) or "smoke" (CI's size: every cell runs, tiny).
    "auto" (or None) means quick on a machine without a GPU, full where CUDA is available."""
    if isinstance(value, bool):
        return value
    text = "auto" if value is None else str(value).strip().lower()
    if text == "auto":
        return not torch.cuda.is_available()
    if text in ("1", "true", "yes", "quick"):
        return True
    if text in ("0", "false", "no", "full"):
        return False
    if text == "smoke":
        return "smoke"
    raise release.CourseError(f"QUICK must be 1, 0, smoke or auto, got {value!r}")


def key_figures(nb: nbformat.NotebookNode) -> list[dict]:
    """The key figures a notebook displayed, in order."""
    found = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if KEY_FIGURE_MIME in data:
                found.append(dict(data[KEY_FIGURE_MIME]))
    return found


def kernel_config() -> Config:
    """Encrypt the kernel's traffic (CurveZMQ) where jupyter_client and pyzmq can.

    Without it, ipykernel >= 7 logs "Kernel is running over TCP without encryption" for every notebook run.
    """
    import zmq
    from jupyter_client import KernelManager

    config = Config()
    if "transport_encryption" in KernelManager.class_trait_names() and zmq.has("curve"):
        config.KernelManager.transport_encryption = "auto"  # only for kernels that declare support
    return config


# The longest a single cell may run: a hung quick-mode cell must not stall CI, while full mode's training cells
# run for most of an hour on a 2-core CPU (lesson 06 trains two seeds in one cell).
CELL_TIMEOUT_S = {"smoke": 600, "quick": 1800, "full": 4 * 3600}


def execute(notebook: Path, output: Path, quick: bool | str, timeout: int | None = None,
            parameters: dict | None = None) -> LessonRun:
    """Run one notebook in its own folder with papermill. Never raises for a failing, timed-out or dead cell:
    see .error. `timeout` is the limit per cell in seconds (default CELL_TIMEOUT_S for the mode)."""
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    timeout = CELL_TIMEOUT_S[mode_name(quick)] if timeout is None else timeout
    output.parent.mkdir(parents=True, exist_ok=True)
    params = {"QUICK": quick, **(parameters or {})}
    start = time.perf_counter()
    error = ""
    try:
        papermill.execute_notebook(str(notebook), str(output), parameters=params, kernel_name="python3",
                                   cwd=str(notebook.parent), progress_bar=False, execution_timeout=timeout,
                                   config=kernel_config())
    except PapermillExecutionError as err:
        cell = err.cell_index
        error = (f"{notebook.name}: cell {cell} (execution count {err.exec_count}) raised "
                 f"{err.ename}: {err.evalue}")
    except CellTimeoutError:
        error = (f"{notebook.name}: a cell ran past the {timeout} s limit per cell; the executed notebook shows "
                 f"which (pass a larger timeout to runner.execute if the cell is meant to run that long)")
    except DeadKernelError as err:
        error = f"{notebook.name}: the kernel died ({err}); out of memory is the usual cause"
    seconds = time.perf_counter() - start
    figures = key_figures(nbformat.read(output, as_version=4)) if output.exists() else []
    return LessonRun(notebook.parent.name, not error, seconds, output, quick, error, figures)


def _row(run: LessonRun) -> str:
    status = "passed" if run.ok else "FAILED"
    colour = "#1a7f37" if run.ok else "#cf222e"
    figure = "; ".join(f"{f['label']}: (a table, in report.json)" if isinstance(f["value"], dict) else
                       f"{f['label']}: {f['value']}{(' ' + f['unit']) if f.get('unit') else ''}"
                       for f in run.figures) or "&ndash;"
    detail = f"<br><small>{html.escape(run.error)}</small>" if run.error else ""
    return (f"<tr><td><a href='{html.escape(run.output.name)}'>{html.escape(run.lesson)}</a></td>"
            f"<td style='color:{colour};font-weight:bold'>{status}{detail}</td>"
            f"<td>{run.seconds:.1f} s</td><td>{html.escape(figure) if run.figures else figure}</td></tr>")


def write_report(runs: list[LessonRun], folder: Path, quick: bool | str) -> Path:
    """Write index.html for a set of runs and return its path."""
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    ok = sum(r.ok for r in runs)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Empathy Camp run {folder.name}</title>
<style>body{{font-family:sans-serif;margin:2em}} td,th{{padding:.4em .8em;border-bottom:1px solid #ddd}}
th{{text-align:left}}</style></head><body>
<h1>Empathy Camp: run {html.escape(folder.name)}</h1>
<p>{ok} of {len(runs)} lessons passed &middot; mode: {mode_name(quick)} &middot;
device: {html.escape(device)} &middot; total {sum(r.seconds for r in runs):.1f} s</p>
<table><tr><th>lesson</th><th>status</th><th>run time</th><th>key figure</th></tr>
{os.linesep.join(_row(r) for r in runs)}
</table></body></html>
"""
    path = folder / "index.html"
    path.write_text(page, encoding="utf-8")
    report = {"run": folder.name, "mode": mode_name(quick), "device": device, "commit": _commit(),
              "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                          "python": platform.python_version(), "torch": torch.__version__},
              "lessons": [{"lesson": r.lesson, "ok": r.ok, "seconds": round(r.seconds, 1), "error": r.error,
                           "figures": r.figures} for r in runs]}
    (folder / "report.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    return path


def _commit() -> str | None:
    """The checkout's commit, with "+changes" when the working tree differs from it (None outside git)."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+changes" if dirty else "")


def read_report(folder: Path) -> dict:
    """A run folder's report: report.json, or for runs made before it existed, the table in index.html."""
    folder = Path(folder)
    if (folder / "report.json").is_file():
        return json.loads((folder / "report.json").read_text(encoding="utf-8"))
    page = folder / "index.html"
    if not page.is_file():
        raise release.CourseError(f"{folder} holds no report.json or index.html: pass a folder written by "
                                  "`python -m camp run` (runs/<timestamp>/)")
    text = page.read_text(encoding="utf-8")
    mode = re.search(r"mode: (smoke|quick|full)", text)
    device = re.search(r"device: ([^&]*?) &middot;", text)
    rows = re.findall(r"<tr><td><a href='[^']*'>([^<]+)</a></td><td[^>]*>(passed|FAILED)[^<]*(?:<br>.*?)?</td>"
                      r"<td>([0-9.]+) s</td>", text)
    if not mode or not rows:
        raise release.CourseError(f"{page} is not a `python -m camp run` report")
    return {"run": folder.name, "mode": mode.group(1), "device": html.unescape(device.group(1)) if device else None,
            "commit": None, "machine": None,
            "lessons": [{"lesson": name, "ok": status == "passed", "seconds": float(sec)} for name, status, sec in rows]}


def keep(folders: list[Path], kept: Path, note: str | None = None) -> dict:
    """Copy each report's passing lessons into the kept run times (benchmarks/lessons.json), one entry per
    (mode, lesson), a later run replacing an earlier one; `note` is kept with each (say what changed since).
    Returns the kept table."""
    from camp.utils import atomic_write_bytes

    table = json.loads(kept.read_text(encoding="utf-8")) if kept.is_file() else {
        "what": "lesson run times from `python -m camp run` reports (runs/<timestamp>/), copied with "
                "`python -m camp run --keep` or `python -m camp keep-run FOLDER`; the README's lesson table quotes them",
        "quick": {}, "full": {}}
    for folder in folders:
        report = read_report(folder)
        if report["mode"] not in ("quick", "full"):
            raise release.CourseError(f"{folder} is a {report['mode']} run: only quick and full runs are kept "
                                      "(smoke size proves that cells run, its times and figures teach nothing)")
        for row in report["lessons"]:
            if row["ok"]:
                table[report["mode"]][row["lesson"]] = {
                    "seconds": row["seconds"], "run": report["run"], "device": report["device"],
                    "commit": report["commit"], "machine": report["machine"], **({"note": note} if note else {}),
                    "figures": {f["label"]: f["value"] for f in row.get("figures", [])}}
    for mode in ("quick", "full"):
        table[mode] = dict(sorted(table[mode].items()))
    atomic_write_bytes(kept, (json.dumps(table, indent=1) + "\n").encode())
    return table


def run_all(root: Path, quick: str | bool | None = "auto", lessons: list[str] | None = None,
            out_root: Path | None = None) -> tuple[Path, list[LessonRun]]:
    """Execute the solution notebooks into runs/<timestamp>/ and write the report."""
    from camp.course.progress import find_notebooks

    quick_mode = resolve_quick(quick)
    names = list(find_notebooks(root / "solutions", lessons)) if lessons else release.lesson_names(root)
    folder = (out_root or root / "runs") / datetime.now().strftime("%Y%m%d-%H%M%S")
    folder.mkdir(parents=True, exist_ok=False)
    runs = []
    for name in names:
        print(f"running {name} ({mode_name(quick_mode)} mode)...", flush=True)
        run = execute(root / "solutions" / name / f"{name}.ipynb", folder / f"{name}.ipynb", quick_mode)
        print(f"  {'ok' if run.ok else 'FAILED'} in {run.seconds:.1f} s {run.error}", flush=True)
        runs.append(run)
    return write_report(runs, folder, quick_mode), runs


# A line that reports a time: it differs between two runs of the same code, so comparisons leave it out.
TIMING = re.compile(r"second|seconds|time|\bit/s\b|\b\d+(\.\d+)?\s?(s|ms|min)\b|\b\d+:\d\d\b", re.I)


def text_outputs(nb: nbformat.NotebookNode) -> list[tuple[int, str]]:
    """(cell index, text) of every output a reader sees, stderr and lines that report times left out."""
    found = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("name") == "stderr":
                continue
            text = out.get("text") or out.get("data", {}).get("text/plain") or ""
            text = "".join(text) if isinstance(text, list) else text
            found.append((i, "\n".join(line for line in text.splitlines() if not TIMING.search(line))))
    return found


def compare_runs(before: Path, after: Path) -> dict:
    """Each lesson run in both `run` folders: its key figures before and after, whether they are identical, and how
    many of its text outputs differ (times aside), with the first few differences. For refactors, which must
    leave every seeded figure as it was."""
    report = {}
    for old in sorted(Path(before).glob("*.ipynb")):
        new = Path(after) / old.name
        if not new.is_file():
            continue
        a, b = nbformat.read(old, as_version=4), nbformat.read(new, as_version=4)
        fa, fb = key_figures(a), key_figures(b)
        ta, tb = text_outputs(a), text_outputs(b)
        differ = [{"cell": x[0], "before": x[1][:400], "after": y[1][:400]} for x, y in zip(ta, tb, strict=False) if x != y]
        report[old.stem] = {
            "figures": {f["label"]: {"before": f["value"], "after": g["value"]} for f, g in zip(fa, fb, strict=False)},
            "figures_identical": fa == fb, "text_outputs": [len(ta), len(tb)], "text_outputs_differing": len(differ),
            "differences": differ[:5]}
    return report
