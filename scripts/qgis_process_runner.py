"""Run the plugin's algorithms through /usr/bin/qgis_process.bin, as a user on a server would.

Used by `make demo`, the screenshot target and the headless tests. The plugin is loaded from this
checkout (QGIS_PLUGINPATH), in a throw-away QGIS profile, with the venv's packages visible.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QGIS_PROCESS = "/usr/bin/qgis_process.bin"  # /usr/bin/qgis_process passes an option 3.22 rejects


class QgisProcessError(RuntimeError):
    pass


def environment(profile_dir: Path, plugin_dir: Path = ROOT) -> dict:
    env = dict(os.environ)
    env["QT_QPA_PLATFORM"] = "offscreen"
    env["QGIS_PLUGINPATH"] = str(plugin_dir)
    env["QGIS_CUSTOM_CONFIG_PATH"] = str(profile_dir)
    env.setdefault("XDG_RUNTIME_DIR", str(profile_dir / "runtime"))
    # qgis_process embeds /usr/bin/python3: make the venv's packages (rasterio, scikit-learn, ...) visible.
    site = sysconfig.get_paths()["purelib"]
    env["PYTHONPATH"] = os.pathsep.join(p for p in (site, env.get("PYTHONPATH", "")) if p)
    env["PATH"] = os.pathsep.join((str(Path(sys.executable).parent), env.get("PATH", "")))
    return env


class QgisProcess:
    def __init__(self, profile_dir: Path, plugin_dir: Path = ROOT):
        self.profile_dir = Path(profile_dir)
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        (self.profile_dir / "runtime").mkdir(exist_ok=True, mode=0o700)
        self.env = environment(self.profile_dir, plugin_dir)
        done = subprocess.run([QGIS_PROCESS, "plugins", "enable", "landslide_plugin"], env=self.env,
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0 and "already enabled" not in done.stdout + done.stderr:
            raise QgisProcessError(f"could not enable the plugin in qgis_process:\n{done.stdout}\n{done.stderr}")

    def _call(self, args: list[str], timeout: float = 3600) -> subprocess.CompletedProcess:
        done = subprocess.run([QGIS_PROCESS, *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout)
        if done.returncode != 0:
            raise QgisProcessError(f"qgis_process {' '.join(args[:2])} failed ({done.returncode}):\n"
                                   f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
        return done

    def run(self, algorithm: str, **parameters) -> dict:
        """Run ``algorithm`` (e.g. "landslide:prepare_s2_l2a"); list values repeat the parameter."""
        args = ["--json", "run", algorithm]
        for name, value in parameters.items():
            if value is None:
                continue
            for item in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(item, bool):
                    item = "true" if item else "false"
                args.append(f"--{name}={item}")
        done = self._call(args)
        text = done.stdout[done.stdout.index("{"):]
        return json.loads(text)

    def list_algorithms(self) -> str:
        return self._call(["list"]).stdout
