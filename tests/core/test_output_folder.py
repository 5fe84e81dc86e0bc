"""The output folder belongs to the user: only the plugin's own files are replaced, all at once, one run at a time."""
from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from landslide_plugin.core import output_folder
from landslide_plugin.core.output_folder import LOCK_NAME, MANIFEST_NAME, FolderBusy, FolderError, OutputFolder


def state(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones included) -> content hash."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def run(folder: Path, files: dict[str, str], inputs=(), fail_inside: bool = False, remove_stale: bool = True):
    """One run writing ``files`` (name -> content) through OutputFolder."""
    with OutputFolder(folder, inputs=inputs) as out:
        out.claim(files)
        outputs = {}
        for name, text in files.items():
            (out.work / name).write_text(text)
            outputs[name] = out.work / name
        if fail_inside:
            raise RuntimeError("the run failed")
        out.commit(outputs, remove_stale=remove_stale)
    return out


def test_first_run_writes_files_and_manifest(tmp_path):
    folder = tmp_path / "results"
    run(folder, {"mask_a.tif": "A", "report.html": "R"})
    assert (folder / "mask_a.tif").read_text() == "A"
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    assert sorted(manifest["files"]) == ["mask_a.tif", "report.html"]
    assert manifest["files"]["mask_a.tif"]["size"] == 1
    # nothing else is left behind: no lock, no working or backup folder
    assert sorted(p.name for p in folder.iterdir()) == [MANIFEST_NAME, "mask_a.tif", "report.html"]


def test_a_user_file_of_an_output_name_stops_the_run_before_any_work(tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "report.html").write_text("my own notes")
    before = state(folder)
    with pytest.raises(FolderError, match=r"already holds report\.html, which was not written by this plugin.*"
                                          r"Move or rename"):
        run(folder, {"mask_a.tif": "A", "report.html": "R"})
    assert state(folder) == before


def test_a_plugin_file_changed_by_the_user_is_no_longer_replaced(tmp_path):
    folder = tmp_path / "results"
    run(folder, {"mask_a.tif": "A"})
    (folder / "mask_a.tif").write_text("edited by hand")
    with pytest.raises(FolderError, match="was changed after the plugin wrote it"):
        run(folder, {"mask_a.tif": "B"})
    assert (folder / "mask_a.tif").read_text() == "edited by hand"


def test_second_run_replaces_its_own_files_and_removes_stale_ones_only(tmp_path):
    folder = tmp_path / "results"
    run(folder, {"mask_a.tif": "A1", "mask_b.tif": "B1", "clusters_b.tif": "C1"})
    (folder / "landslides_survey.geojson").write_text("user's survey")
    (folder / "mask_notes.tif").write_text("user's raster")
    (folder / "mask_b.tif.aux.xml").write_text("<PAMDataset/>")  # QGIS statistics beside the plugin's raster
    run(folder, {"mask_a.tif": "A2"})
    assert (folder / "mask_a.tif").read_text() == "A2"
    assert not (folder / "mask_b.tif").exists() and not (folder / "clusters_b.tif").exists()
    assert not (folder / "mask_b.tif.aux.xml").exists()
    assert (folder / "landslides_survey.geojson").read_text() == "user's survey"
    assert (folder / "mask_notes.tif").read_text() == "user's raster"
    assert sorted(json.loads((folder / MANIFEST_NAME).read_text())["files"]) == ["mask_a.tif"]


def test_stale_file_that_is_an_input_is_kept(tmp_path):
    folder = tmp_path / "results"
    run(folder, {"pre_stack.tif": "P", "mask_a.tif": "A"})
    out = run(folder, {"mask_a.tif": "A2"}, inputs=[folder / "pre_stack.tif"])
    assert (folder / "pre_stack.tif").read_text() == "P"
    assert any("input" in note for note in out.notes)


def test_an_input_with_an_output_name_stops_the_run(tmp_path):
    folder = tmp_path / "results"
    run(folder, {"post_aligned.tif": "P"})
    with pytest.raises(FolderError, match="is an input of this run"):
        run(folder, {"post_aligned.tif": "Q"}, inputs=[folder / "post_aligned.tif"])
    assert (folder / "post_aligned.tif").read_text() == "P"


def test_failed_run_leaves_the_folder_as_it_was(tmp_path):
    folder = tmp_path / "results"
    run(folder, {"mask_a.tif": "A1"})
    (folder / "mine.txt").write_text("mine")
    before = state(folder)
    with pytest.raises(RuntimeError):
        run(folder, {"mask_a.tif": "A2"}, fail_inside=True)
    assert state(folder) == before
    assert not (folder / LOCK_NAME).exists()


def test_failed_run_into_a_new_folder_leaves_no_folder(tmp_path):
    with pytest.raises(RuntimeError):
        run(tmp_path / "new", {"mask_a.tif": "A"}, fail_inside=True)
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EXDEV, errno.EACCES])
@pytest.mark.parametrize("fail_at", [1, 2, 3, 4])
def test_failure_while_putting_files_in_place_restores_the_previous_run(tmp_path, monkeypatch, error, fail_at):
    folder = tmp_path / "results"
    run(folder, {"mask_a.tif": "A1", "mask_b.tif": "B1", "report.html": "R1"})
    (folder / "mine.txt").write_text("mine")
    before = state(folder)
    real_replace = os.replace
    calls = {"n": 0}

    def failing_replace(src, dst, *args, **kwargs):
        if ".landslide-" in str(src) or ".landslide-" in str(dst):
            calls["n"] += 1
            if calls["n"] == fail_at:
                raise OSError(error, os.strerror(error), str(dst))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(output_folder.os, "replace", failing_replace)
    with pytest.raises(FolderError, match="was restored to what it held before the run"):
        run(folder, {"mask_a.tif": "A2", "mask_c.tif": "C2", "report.html": "R2"})
    monkeypatch.setattr(output_folder.os, "replace", real_replace)
    assert state(folder) == before


def test_folder_that_is_a_file_or_under_a_file(tmp_path):
    target = tmp_path / "results"
    target.write_text("a file")
    with pytest.raises(FolderError, match="is a file, not a folder: choose a folder"):
        run(target, {"mask_a.tif": "A"})
    with pytest.raises(FolderError, match="cannot be created"):
        run(target / "sub", {"mask_a.tif": "A"})
    assert target.read_text() == "a file"


def test_second_run_into_a_busy_folder_refuses_at_once(tmp_path):
    folder = tmp_path / "results"
    with OutputFolder(folder) as first:
        first.claim(["mask_a.tif"])
        with pytest.raises(FolderBusy, match="Another run is writing into .* right now"):
            with OutputFolder(folder):
                pass
        (first.work / "mask_a.tif").write_text("A")
        first.commit({"mask_a.tif": first.work / "mask_a.tif"})
    assert (folder / "mask_a.tif").read_text() == "A"
    run(folder, {"mask_a.tif": "A2"})  # free again afterwards


def test_lock_of_another_live_process_refuses_and_of_a_dead_one_is_taken_over(tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (folder / LOCK_NAME).write_text(json.dumps({"pid": sleeper.pid, "host": output_folder.socket.gethostname(),
                                                    "token": "x", "started": 0}))
        with pytest.raises(FolderBusy, match=f"process {sleeper.pid}"):
            run(folder, {"mask_a.tif": "A"})
    finally:
        sleeper.kill()
        sleeper.wait()
    # the process is gone (a crashed QGIS): its lock no longer blocks
    run(folder, {"mask_a.tif": "A"})
    assert (folder / "mask_a.tif").read_text() == "A"
    assert not (folder / LOCK_NAME).exists()


def test_abandoned_working_folder_of_a_crashed_run_is_cleaned(tmp_path):
    folder = tmp_path / "results"
    run(folder, {"mask_a.tif": "A"})
    (folder / ".landslide-run-abc").mkdir()
    (folder / ".landslide-run-abc" / "mask_a.tif").write_text("half")
    run(folder, {"mask_a.tif": "A2"})
    assert not (folder / ".landslide-run-abc").exists()


def test_randomised_runs_never_lose_a_user_file(tmp_path, monkeypatch):
    """Arbitrary user files, any sequence of successful, failing and interrupted runs: nothing of the user's is lost."""
    rng = random.Random(1234)
    folder = tmp_path / "results"
    folder.mkdir()
    plugin_names = ["mask_threshold.tif", "mask_gmm3.tif", "clusters_gmm3.tif", "report.html", "metrics.csv",
                    "landslides_gmm3.geojson", "slope.tif"]
    user_names = ["landslides_survey.geojson", "mask_notes.tif", "notes.txt", "report_2019.html", "slope_old.tif",
                  "metrics.xlsx", "README"]
    user: dict[str, str] = {}
    real_replace = os.replace
    for step in range(60):
        action = rng.choice(["user", "run", "run", "fail", "commit_fail", "collide"])
        if action == "user":
            name = rng.choice(user_names)
            user[name] = f"user {step} {rng.random()}"
            (folder / name).write_text(user[name])
        elif action == "collide":
            name = rng.choice(plugin_names)
            if not (folder / name).exists():
                user[name] = f"user's own {name}"
                (folder / name).write_text(user[name])
        else:
            files = {n: f"run {step} {n}" for n in rng.sample(plugin_names, rng.randint(1, len(plugin_names)))}
            before = state(folder)
            calls = {"n": 0, "at": rng.randint(1, 6)}

            def failing_replace(src, dst, *args, calls=calls, **kwargs):
                calls["n"] += 1
                if calls["n"] == calls["at"]:
                    raise OSError(errno.ENOSPC, "No space left on device", str(dst))
                return real_replace(src, dst, *args, **kwargs)

            if action == "commit_fail":
                monkeypatch.setattr(output_folder.os, "replace", failing_replace)
            try:
                run(folder, files, fail_inside=(action == "fail"))
                succeeded = True
            except (FolderError, RuntimeError):
                succeeded = False
            finally:
                monkeypatch.setattr(output_folder.os, "replace", real_replace)
            if not succeeded:
                assert state(folder) == before, f"step {step} ({action}) changed the folder"
            else:
                for name, text in files.items():
                    assert (folder / name).read_text() == text
        for name, text in user.items():
            assert (folder / name).read_text() == text, f"step {step}: the user's {name} was lost or changed"
    assert not (folder / LOCK_NAME).exists()
