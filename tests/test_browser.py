"""Lessons 03 and 07 in a real browser: JupyterLab in headless Chromium, Run All, then a real click on a widget.

The headless widget tests (test_widgets.py) call the callbacks directly; these check what only a browser
shows: that the widget JavaScript loads in Lab, the widget renders, and a click travels to the kernel and back
(lesson 03: a reply sent in the chat playground; lesson 07: a rating clicked in the PreferenceRater, which must
land as one line in the ratings file). tests/browser/drive_lab.mjs does the driving with playwright-core; this
file starts and stops the server.

Needs Chromium at /usr/bin/chromium, node, and `npm ci` in tests/browser (`make browser` sets all three up).
Skipped when they are missing, except under CI (the CI variable set), where that is a failure.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
DRIVER = ROOT / "tests" / "browser" / "drive_lab.mjs"
CHROMIUM = Path(os.environ.get("CAMP_CHROMIUM", "/usr/bin/chromium"))
# The solution, not the lesson: the lesson's blank exercises raise NotImplementedError, which stops Run All.
NOTEBOOK = ROOT / "solutions" / "03_empathy_environment" / "03_empathy_environment.ipynb"
RATER_NOTEBOOK = ROOT / "solutions" / "07_learning_from_preferences" / "07_learning_from_preferences.ipynb"
SHOTS = ROOT / "runs" / "browser"
REPLY = "That sounds really hard. I am here and listening."
START_TIMEOUT = 60  # s for the Jupyter server to answer; it takes ~3 s when the machine is not busy
RUN_TIMEOUT = 300  # s for Run All of the small notebook, with room for 2 cores shared with other jobs


def _missing() -> str | None:
    """Why the browser test cannot run here, or None when it can."""
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (apt-get install -y chromium)"
    if shutil.which("node") is None:
        return "no node on PATH (apt-get install -y nodejs npm)"
    if not (DRIVER.parent / "node_modules" / "playwright-core").is_dir():
        return "playwright-core is not installed (cd tests/browser && npm ci)"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, lines: int = 30) -> str:
    text = path.read_text(errors="replace") if path.exists() else "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _wait_for_server(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"JupyterLab exited with code {proc.returncode}; see {log}:\n{_tail(log)}", pytrace=False)
        try:
            with urllib.request.urlopen(f"{url}api", timeout=2) as reply:
                json.load(reply)  # {"version": ...}: the server is up and serving its REST API
                return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"JupyterLab did not start within {START_TIMEOUT} s; see {log}:\n{_tail(log)}", pytrace=False)


def _stop(proc: subprocess.Popen) -> None:
    """Stop a process started in a group of its own, and what it started (the server's kernel, Chromium)."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _lab(tmp_path, notebook: Path, driver_args: list[str], kernel_env: dict | None = None) -> tuple[str, Path]:
    """Serve a copy of `notebook` from a temporary JupyterLab, drive it with drive_lab.mjs, return its stdout and
    the screenshot. Fails the test with the driver's and the server's logs when a step fails."""
    reason = _missing()
    if reason and os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(f"browser test cannot run under CI: {reason}; .ci/run installs it", pytrace=False)
    if reason:
        pytest.skip(f"{reason}; `make browser` installs it")

    lab = tmp_path / "lab"  # the server's root: a copy, so nothing it writes lands in solutions/
    lab.mkdir(exist_ok=True)
    if not (lab / notebook.name).exists():
        shutil.copy(notebook, lab)
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    log = tmp_path / "jupyter.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(kernel_env or {}),
           # Lab's settings, workspaces and connection files go to the temp folder, not the user's home.
           "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
           "--ServerApp.port_retries=0",  # fail on a taken port instead of quietly moving to another
           "--ServerApp.token=", "--LabApp.expose_app_in_browser=True",  # expose: window.jupyterapp
           f"--ServerApp.root_dir={lab}"]
    # No "get notified about Jupyter news?" toast over the screenshot (Lab's user settings live in this folder).
    news = tmp_path / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True, exist_ok=True)
    news.write_text('{"fetchNews": "false"}')
    SHOTS.mkdir(parents=True, exist_ok=True)
    shot = SHOTS / f"{notebook.stem}.png"
    shot.unlink(missing_ok=True)

    start = time.monotonic()
    with log.open("w") as out:
        server = subprocess.Popen(cmd, cwd=lab, env=env, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        _wait_for_server(url, server, log)
        drive = ["node", str(DRIVER), "--url", url, "--notebook", notebook.name, "--screenshot", str(shot),
                 "--chromium", str(CHROMIUM), "--run-timeout", str(RUN_TIMEOUT), *driver_args]
        # Its own group too, so that Chromium goes with it if it has to be stopped from here.
        driver = subprocess.Popen(drive, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  start_new_session=True)
        try:
            stdout, stderr = driver.communicate(timeout=RUN_TIMEOUT + 120)  # its own steps time out sooner
        except subprocess.TimeoutExpired:
            pytest.fail(f"the browser driver did not finish within {RUN_TIMEOUT + 120} s; Jupyter log: {log}",
                        pytrace=False)
        finally:
            _stop(driver)
    finally:
        _stop(server)
    print(stdout, stderr, sep="\n")
    if driver.returncode != 0:
        pytest.fail(f"{stderr.strip()}\nscreenshot: {shot}\ndriver output:\n{stdout}\n"
                    f"Jupyter log ({log}):\n{_tail(log)}", pytrace=False)
    assert shot.stat().st_size > 10_000  # a real PNG of the page, not an empty file
    print(f"browser test took {time.monotonic() - start:.1f} s; screenshot: {shot}")
    return stdout, shot


def _small_copy(notebook: Path, tmp_path: Path, keep: tuple[str, ...], **parameters: str) -> None:
    """A notebook made for the test from the lesson's own cells, written into the lab folder: its parameters cell
    (QUICK = "smoke", as papermill would set it, and any NAME="source text" given), its sizes cell, and the code
    cells that hold any of the `keep` snippets, in order. Run All then takes seconds, not the whole lesson."""
    nb = nbformat.read(notebook, 4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    params.source += "".join(f"\n{name} = {value}" for name, value in {"QUICK": '"smoke"', **parameters}.items())
    wanted = ("utils.run_size(QUICK)", *keep)
    nb.cells = [c for c in nb.cells if c is params or (c.cell_type == "code" and any(k in c.source for k in wanted))]
    assert len(nb.cells) == 2 + len(keep), f"{notebook.name}: expected one cell for each of {wanted}"
    (tmp_path / "lab").mkdir(exist_ok=True)
    nbformat.write(nb, tmp_path / "lab" / notebook.name)


def test_lesson_03_chat_playground_in_jupyterlab(tmp_path, record_property):
    # The lesson's cells that build the listener and the playground.
    _small_copy(NOTEBOOK, tmp_path, ("Listener.default()", "ChatPlayground("))
    stdout, shot = _lab(tmp_path, NOTEBOOK, ["--mode", "chat", "--reply", REPLY])
    # The driver already waited for this; checking its report keeps the test's claim visible here.
    assert f"agent: {REPLY}" in stdout  # the click reached the kernel, and the new turn came back
    record_property("screenshot", str(shot))


def test_lesson_07_rating_click_writes_one_line(tmp_path, record_property):
    # The lesson's cells that load the preference pairs and show the rater, with its ratings file pointed into the
    # temp folder (as papermill would set a parameter).
    ratings = tmp_path / "my_ratings.jsonl"
    _small_copy(RATER_NOTEBOOK, tmp_path, ("data.load_preferences(split)", "PreferenceRater("),
                RATINGS_FILE=repr(str(ratings)))
    stdout, shot = _lab(tmp_path, RATER_NOTEBOOK, ["--mode", "rate"])
    assert "rated: Pair 2 of" in stdout  # the widget moved on to the next pair after the click
    lines = ratings.read_text().splitlines()
    assert len(lines) == 1, lines  # one click, one line
    record = json.loads(lines[0])
    assert record["choice"] == "a" and record["a"] and record["b"] and "flipped" in record
    record_property("screenshot", str(shot))
