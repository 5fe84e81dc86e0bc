"""Start the real QGIS desktop (/usr/bin/qgis.bin) under Xvfb with the plugin enabled from this checkout.

For tests of what only the desktop application does: the layer tree view and the Layer Styling dock
reacting to loaded results, and quitting. QGIS runs in a throw-away profile (the plugin is enabled there
through qgis_process, as ``scripts/screenshot.py`` does), runs ``code`` with ``--code`` and is expected
to quit by itself; a run that outlives ``timeout`` is killed with its Xvfb.

A crash is visible three ways: QGIS's own handler prints "QGIS died on signal 11" (then attaches gdb,
prints the backtrace on stdout and aborts, exit status 134); without the handler the shell reports a
"Segmentation fault" and the status is 139 (or the negative signal number).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QGIS_BIN = "/usr/bin/qgis.bin"
CRASH_MARKERS = ("QGIS died on signal", "Segmentation fault", "SIGSEGV")


def gui_unavailable() -> str | None:
    """Why the desktop cannot be started here (None when it can)."""
    if not shutil.which("xvfb-run"):
        return "xvfb-run is not installed (apt-get install xvfb; `make test` installs it)"
    if not Path(QGIS_BIN).exists():
        return f"{QGIS_BIN} is not installed (apt-get install qgis; `make test` installs it)"
    return None


@dataclass
class GuiRun:
    returncode: int | None  # None: killed after the timeout
    stdout: str
    stderr: str

    @property
    def timed_out(self) -> bool:
        return self.returncode is None

    @property
    def crashed(self) -> bool:
        text = self.stdout + self.stderr
        by_signal = self.returncode is not None and (self.returncode < 0 or self.returncode >= 128)
        return by_signal or any(marker in text for marker in CRASH_MARKERS)

    def tail(self, chars: int = 4000) -> str:
        return f"exit status {self.returncode}\n--- stdout\n{self.stdout[-chars:]}\n--- stderr\n{self.stderr[-chars:]}"


def run_qgis_gui(code: str, work: Path, timeout: float = 120, env: dict | None = None) -> GuiRun:
    """Run QGIS under Xvfb with ``code`` (Python source) as its startup code; ``work`` holds the profile."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from qgis_process_runner import QgisProcess, environment
    finally:
        sys.path.remove(str(ROOT / "scripts"))

    work = Path(work)
    profile = work / "qgis-profile"
    QgisProcess(profile)  # enables the plugin (from this checkout) in the throw-away profile
    run_env = environment(profile)
    run_env["QT_QPA_PLATFORM"] = "xcb"
    run_env.pop("QT_QPA_PLATFORMTHEME", None)
    run_env.update(env or {})
    startup = work / "startup.py"
    startup.write_text(code, encoding="utf-8")
    command = ["xvfb-run", "-a", "-s", "-screen 0 1280x1024x24", QGIS_BIN, "--nologo", "--noversioncheck",
               "--profiles-path", str(profile), "--code", str(startup)]
    # Own session: on a timeout the whole group (xvfb-run, Xvfb, QGIS) is killed, nothing is left behind.
    process = subprocess.Popen(command, env=run_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
        return GuiRun(process.returncode, stdout, stderr)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        return GuiRun(None, stdout, stderr)
