"""`--engine ray`: the same files, rows and numbers as the local engine; resume; no-Ray message.

The Ray tests share one local Ray instance with 2 CPUs (started once per test process); the
commands find it initialised and use it, as they would use a cluster given with --address.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from maskforge.cli import cli
from maskforge.dataset.manifest import write_manifest

# Ray Data's own DataContext touches its deprecated settings when it copies itself.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray")
REPO = Path(__file__).resolve().parents[2]
# Ten photos: 8 + 2 tasks per Ray block with one actor, so a kill can land between blocks.
N_PHOTOS = 10
SYNTH_ARGS = ("--seed", "3", "--mask-type", "surgical", "--wear", "random")


def invoke(*args) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result.exit_code, result.output


def tree_bytes(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.suffix == ".jpg"
    }


@pytest.fixture(scope="module")
def ray_address():
    """A local Ray instance with 2 CPUs for this module; yields its address."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RAY_USAGE_STATS_ENABLED", "0")  # no reports to Ray's servers from tests
        env.delenv("RAY_ADDRESS", raising=False)
        ray.init(
            address="local",  # a new instance, even where `ray start` runs one
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
        )
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def photos(unmasked_dir: Path, tmp_path_factory) -> Path:
    """A work folder holding raw/ with N_PHOTOS real photos, spread over the collection."""
    work = tmp_path_factory.mktemp("ray_work")
    (work / "raw").mkdir()
    for name in sorted(os.listdir(unmasked_dir))[::90][:N_PHOTOS]:
        shutil.copy(unmasked_dir / name, work / "raw" / name)
    return work


@pytest.fixture(scope="module")
def local_run(photos: Path) -> Path:
    """The local engine's output for the photos (2 worker processes)."""
    out = photos / "local"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(photos)  # module-scoped: set up before each test's own working folder
        code, output = invoke("synthesize", photos / "raw", out, "--workers", "2", *SYNTH_ARGS)
    assert code in (0, 3), output
    return out


def test_ray_engine_writes_what_the_local_engine_writes(
    ray_address, photos, local_run, monkeypatch
):
    # Relative paths: the actors run in another folder and must get absolute ones.
    monkeypatch.chdir(photos)
    args = ("synthesize", "raw", "ray_out", "--workers", "2", "--engine", "ray", *SYNTH_ARGS)
    code, output = invoke(*args, "--limit", "4")  # a partial run, then the rest
    assert code in (0, 3), output
    assert "2 Ray actors on a local Ray" in output
    assert f"{N_PHOTOS} found, 0 already done, 4 processed" in output
    code, output = invoke(*args)
    assert code in (0, 3), output
    assert f"{N_PHOTOS} found, 4 already done, {N_PHOTOS - 4} processed" in output
    ray_out = photos / "ray_out"
    ref = tree_bytes(local_run)
    assert len(ref) >= 2 * 8  # most photos gave a masked and an unmasked crop
    assert {p.split("/")[0] for p in ref} == {"masked", "incorrect", "unmasked"}
    assert tree_bytes(ray_out) == ref
    assert (ray_out / "synthesis.csv").read_bytes() == (local_run / "synthesis.csv").read_bytes()
    assert json.loads((ray_out / "run.json").read_text()) == json.loads(
        (local_run / "run.json").read_text()
    )


def test_kill_9_on_a_cluster_then_resume(ray_address, photos, local_run, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "maskforge", "synthesize", photos / "raw", out]
    cmd += ["--workers", "1", "--engine", "ray", "--address", ray_address, *SYNTH_ARGS]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen(
        [str(c) for c in cmd],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    journal = out / ".synthesis.journal.csv"
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        if journal.is_file() and journal.read_text().count("\n") >= 2:  # header + a row
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    _, stderr = proc.communicate()
    assert journal.is_file(), stderr
    assert not (out / "synthesis.csv").exists()  # written whole, only when a run ends
    # Ray's INFO/WARNING banners stay out of the user's terminal.
    assert "INFO" not in stderr and "WARNING" not in stderr, stderr

    code, output = invoke("synthesize", photos / "raw", out, "--engine", "ray", *SYNTH_ARGS)
    assert code in (0, 3), output
    # Usually half-way; the photos are small, so the kill may also land after the last row.
    done, processed = map(int, re.search(r"(\d+) already done, (\d+) processed", output).groups())
    assert done + processed == N_PHOTOS and done >= 1
    assert tree_bytes(out) == tree_bytes(local_run)
    lines = (out / "synthesis.csv").read_text().splitlines()
    ref_lines = (local_run / "synthesis.csv").read_text().splitlines()
    assert lines[0] == ref_lines[0] and len(lines) == len(set(lines))  # no duplicate rows
    assert sorted(lines[1:]) == sorted(ref_lines[1:])
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_stats_on_ray_equal_local(ray_address, unmasked_dir, tmp_path, monkeypatch):
    names = sorted(os.listdir(unmasked_dir))[::7][:100]  # two chunks of 64 and 36
    (tmp_path / "broken.jpg").write_bytes(b"not a photo")
    files = [str(unmasked_dir / n) for n in names] + [str(tmp_path / "broken.jpg")]
    files.append(files[0])  # listed twice: counts twice
    labels = ["unmasked", "masked"] * (len(files) // 2) + ["masked"] * (len(files) % 2)
    write_manifest(pd.DataFrame({"abspath": files, "label": labels}), tmp_path / "m.csv")
    monkeypatch.chdir(tmp_path)
    base = ["stats", "m.csv", "--size", "24", "--drop-missing"]
    code, local_text = invoke(*base, "--workers", "1", "--json", "local.json")
    assert code == 0, local_text
    code, ray_text = invoke(*base, "--workers", "2", "--engine", "ray", "--json", "ray.json")
    assert code == 0, ray_text
    local, ray = (json.loads(Path(f"{n}.json").read_text()) for n in ("local", "ray"))
    np.testing.assert_allclose(ray["mean"], local["mean"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(ray["std"], local["std"], rtol=0, atol=1e-12)
    assert ray["count"] == local["count"] == len(names) + 1
    assert 0.2 < local["mean"][0] < 0.8 and 0.1 < local["std"][0] < 0.4
    assert "Left out: 0 missing, 1 unreadable images" in ray_text


def test_without_ray_the_commands_say_how_to_install(tmp_path, monkeypatch):
    from maskforge.core.ray_engine import RayNotInstalledError
    from maskforge.synth.run.pipeline import SynthesisOptions
    from maskforge.synth.run.runner import RunOptions, run_synthesis

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    (tmp_path / "raw").mkdir()
    for args in (
        ["synthesize", tmp_path / "raw", tmp_path / "out", "--engine", "ray"],
        ["stats", tmp_path / "m.csv", "--engine", "ray"],
    ):
        code, output = invoke(*args)
        assert code == 2, output
        assert output.strip().splitlines() == [
            "Error: Ray is not installed; install it with: pip install 'maskforge[ray]'"
        ]
    assert not (tmp_path / "out").exists()
    with pytest.raises(RayNotInstalledError, match=r"pip install 'maskforge\[ray\]'"):
        run_synthesis(
            tmp_path / "raw", tmp_path / "out", SynthesisOptions(), RunOptions(engine="ray")
        )
    assert not (tmp_path / "out").exists()
    code, output = invoke("synthesize", tmp_path / "raw", tmp_path / "out", "--address", "auto")
    assert code == 2 and "Error: --address auto needs --engine ray." in output


def flaky_factory():
    """A worker factory for ray_map, defined here so that Ray pickles it by value (the actors
    cannot import this test module): make_worker(bad, log, crashes) -> (x -> 2 * x), except
    that task `bad` appends a line to the file `log`, then raises ValueError (crashes < 0) or
    kills its own process while `log` has at most `crashes` lines."""

    def make_worker(bad: int, log: str, crashes: int):
        def double(x: int) -> int:
            if x == bad:
                with open(log, "a") as fh:
                    fh.write("try\n")
                if crashes < 0:
                    raise ValueError(f"task {x} is cursed")
                if Path(log).read_text().count("\n") <= crashes:
                    os._exit(1)  # as a segfault or the OOM killer would end it
            return 2 * x

        return double

    return make_worker


def test_ray_map_reads_the_tasks_as_it_goes(ray_address, tmp_path):
    from maskforge.core.ray_engine import ray_map

    pulled = []

    def tasks():
        for i in range(7):
            pulled.append(i)
            yield i

    assert list(ray_map(flaky_factory(), (-1, "", 0), iter([]), 2)) == []
    results = ray_map(flaky_factory(), (-1, "", 0), tasks(), 2, 2, tasks_per_dataset=4)
    assert next(results) == 0
    assert pulled == [0, 1, 2, 3]  # one dataset's worth, not the whole iterable
    assert list(results) == [2 * i for i in range(1, 7)]


def test_a_worker_error_ends_the_run_with_its_message(ray_address, tmp_path):
    from maskforge.core.ray_engine import ray_map

    log = tmp_path / "tries.txt"
    got = []
    with pytest.raises(RuntimeError) as info:
        for result in ray_map(flaky_factory(), (5, str(log), -1), range(12), 2, 2):
            got.append(result)
    message = str(info.value)
    assert "\n" not in message and "ValueError: task 5 is cursed" in message, message
    assert got == [2 * i for i in range(len(got))] and len(got) <= 4  # what came before
    assert log.read_text() == "try\n"  # an error in the worker's code is not retried


@pytest.mark.parametrize("crashes", [1, 99])
def test_an_actor_that_crashes_is_restarted_once(ray_address, tmp_path, crashes):
    from maskforge.core.ray_engine import ACTOR_RETRIES, ray_map

    log = tmp_path / "tries.txt"
    results = ray_map(flaky_factory(), (5, str(log), crashes), range(12), 2, 2)
    start = time.monotonic()
    if crashes <= ACTOR_RETRIES:  # a crash that does not come back: the run goes on
        assert list(results) == [2 * i for i in range(12)]
    else:  # one that does: the run stops, with a line that says so (Ray's default retries
        with pytest.raises(RuntimeError) as info:  # forever, the run never ending)
            list(results)
        message = str(info.value)
        assert "\n" not in message and "an actor died, and again after 1 restart" in message
        assert "rerun the same command to resume" in message
    assert log.read_text() == "try\n" * (1 + ACTOR_RETRIES)
    assert time.monotonic() - start < 150


def test_a_worker_that_cannot_start_ends_the_run_with_its_message(ray_address):
    from maskforge.core.ray_engine import ray_map

    def broken_factory():  # pickled by value, as flaky_factory
        def make_worker():
            raise FileNotFoundError("no landmarks model at /models/shape_68.dat")

        return make_worker

    with pytest.raises(RuntimeError) as info:
        list(ray_map(broken_factory(), (), range(4), 2))
    message = str(info.value)
    assert "\n" not in message, message
    assert "FileNotFoundError: no landmarks model at /models/shape_68.dat" in message
    assert "every node needs maskforge" in message  # the usual fix, not "an actor died"


def test_a_process_that_loaded_mediapipe_runs_the_default_on_ray(unmasked_dir, tmp_path):
    """MediaPipe's runtime in the driver and then a local Ray (each bundles its own C++
    runtimes) once segfaulted a test worker: in a fresh process, as a user's script would do it,
    mask_face (MediaPipe loaded) then the default synthesis on Ray must both work."""
    pytest.importorskip("ray.data")
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in sorted(os.listdir(unmasked_dir))[:3]:
        shutil.copy(unmasked_dir / name, raw / name)
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from maskforge import mask_face, read_image\n"
        "from maskforge.synth.run.pipeline import SynthesisOptions\n"
        "from maskforge.synth.run.runner import RunOptions, run_synthesis\n"
        "raw, out = Path(sys.argv[1]), Path(sys.argv[2])\n"
        "mask_face(read_image(next(raw.iterdir())))\n"
        "s = run_synthesis(raw, out, SynthesisOptions(), RunOptions(engine='ray', workers=1))\n"
        "print('masked', s.photos_masked, 'of', s.processed)\n"
    )
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(REPO)}
    env.pop("RAY_ADDRESS", None)
    done = subprocess.run(
        [sys.executable, "-c", script, raw, tmp_path / "out"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "masked 3 of 3" in done.stdout
    recorded = json.loads((tmp_path / "out" / "run.json").read_text())
    assert recorded["options"]["landmarks"] == "mediapipe"
