"""`python -m camp run`: execute every solution notebook with papermill and write an HTML report.

The report, runs/<timestamp>/index.html, lists each lesson with its status, run time and key figure
(the value a lesson shows with `camp.utils.key_figure`). The tests use `execute` too.
"""

from __future__ import annotations

import html
import os
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
    quick: bool
    error: str = ""
    figures: list[dict] = field(default_factory=list)


def resolve_quick(value: str | bool | None) -> bool:
    """"auto" (or None) means quick on a machine without a GPU, full where CUDA is available."""
    if isinstance(value, bool):
        return value
    text = "auto" if value is None else str(value).strip().lower()
    if text == "auto":
        return not torch.cuda.is_available()
    if text in ("1", "true", "yes"):
        return True
    if text in ("0", "false", "no"):
        return False
    raise release.CourseError(f"QUICK must be 1, 0 or auto, got {value!r}")


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


def execute(notebook: Path, output: Path, quick: bool, timeout: int = 1800,
            parameters: dict | None = None) -> LessonRun:
    """Run one notebook in its own folder with papermill. Never raises for a failing cell: see .error."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

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
    seconds = time.perf_counter() - start
    figures = key_figures(nbformat.read(output, as_version=4)) if output.exists() else []
    return LessonRun(notebook.parent.name, not error, seconds, output, quick, error, figures)


def _row(run: LessonRun) -> str:
    status = "passed" if run.ok else "FAILED"
    colour = "#1a7f37" if run.ok else "#cf222e"
    figure = "; ".join(f"{f['label']}: {f['value']}{(' ' + f['unit']) if f.get('unit') else ''}"
                       for f in run.figures) or "&ndash;"
    detail = f"<br><small>{html.escape(run.error)}</small>" if run.error else ""
    return (f"<tr><td><a href='{html.escape(run.output.name)}'>{html.escape(run.lesson)}</a></td>"
            f"<td style='color:{colour};font-weight:bold'>{status}{detail}</td>"
            f"<td>{run.seconds:.1f} s</td><td>{html.escape(figure) if run.figures else figure}</td></tr>")


def write_report(runs: list[LessonRun], folder: Path, quick: bool) -> Path:
    """Write index.html for a set of runs and return its path."""
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    ok = sum(r.ok for r in runs)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Empathy Camp run {folder.name}</title>
<style>body{{font-family:sans-serif;margin:2em}} td,th{{padding:.4em .8em;border-bottom:1px solid #ddd}}
th{{text-align:left}}</style></head><body>
<h1>Empathy Camp: run {html.escape(folder.name)}</h1>
<p>{ok} of {len(runs)} lessons passed &middot; mode: {'quick' if quick else 'full'} &middot;
device: {html.escape(device)} &middot; total {sum(r.seconds for r in runs):.1f} s</p>
<table><tr><th>lesson</th><th>status</th><th>run time</th><th>key figure</th></tr>
{os.linesep.join(_row(r) for r in runs)}
</table></body></html>
"""
    path = folder / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


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
        print(f"running {name} ({'quick' if quick_mode else 'full'} mode)...", flush=True)
        run = execute(root / "solutions" / name / f"{name}.ipynb", folder / f"{name}.ipynb", quick_mode)
        print(f"  {'ok' if run.ok else 'FAILED'} in {run.seconds:.1f} s {run.error}", flush=True)
        runs.append(run)
    return write_report(runs, folder, quick_mode), runs
