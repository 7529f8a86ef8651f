"""Crash safety of checkpoint writes: a process killed at every step of a directory swap leaves a complete
checkpoint that resolve/recover find, and the next save works."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from faceptor_core import durable

FILES = ("model.safetensors", "faceptor.json", "trainer.pt")

#: Runs in a fresh interpreter: loads durable.py by path (no torch import: ~50 ms a run), counts every
#: file-system step (mkdir, each file written, fsync, rename, unlink, rmdir) and dies with os._exit at step N.
CHILD = textwrap.dedent("""
    import importlib.util, os, shutil, sys
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("durable_under_test", sys.argv[1])
    durable = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(durable)
    crash_at, final, version = int(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
    steps = [0]

    def step():
        steps[0] += 1
        if steps[0] == crash_at:
            os._exit(75)

    def counted(fn):
        def wrapper(*args, **kwargs):
            step()
            return fn(*args, **kwargs)
        return wrapper

    for name in ("mkdir", "rename", "replace", "fsync", "unlink", "rmdir"):
        setattr(os, name, counted(getattr(os, name)))

    def fill(folder):
        for name in FILES:
            with open(folder / name, "w") as fh:
                step()
                fh.write(version + "-" + name[: len(name) // 2])
                fh.flush()
                step()  # dies with half the file written
                fh.write(name[len(name) // 2 :])

    durable.replace_dir(final, fill)
    print(steps[0])
""").replace("FILES:", repr(FILES) + ":")


def write_version(final: Path, version: str) -> None:
    def fill(folder: Path) -> None:
        for name in FILES:
            (folder / name).write_text(f"{version}-{name}")

    durable.replace_dir(final, fill)


def version_of(folder: Path) -> str:
    """The version every file of a checkpoint holds; fails on a mixture or a partial file."""
    versions = set()
    for name in FILES:
        text = (folder / name).read_text()
        version, _, rest = text.partition("-")
        assert rest == name, f"{folder / name} is incomplete: {text!r}"
        versions.add(version)
    assert len(versions) == 1, f"{folder} mixes versions {versions}"
    return versions.pop()


def test_a_kill_at_every_step_of_the_swap_leaves_a_complete_checkpoint(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    outcomes = []
    for crash_at in range(1, 200):
        run = tmp_path / f"run{crash_at}"
        final = run / "checkpoints" / "last"
        write_version(final, "v1")
        proc = subprocess.run(
            [sys.executable, str(script), durable.__file__, str(crash_at), str(final), "v2"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode in (0, 75), proc.stderr
        found = durable.resolve_dir(final)
        assert found is not None, f"killed at step {crash_at}: no complete checkpoint ({os.listdir(final.parent)})"
        seen = version_of(found)
        assert durable.recover_dir(final) == final
        assert version_of(final) == seen
        assert sorted(os.listdir(final.parent)) == ["last"], "recovery leaves no working copies behind"
        write_version(final, "v3")  # the next save after the crash works
        assert version_of(final) == "v3"
        outcomes.append(seen)
        if proc.returncode == 0:
            total_steps = int(proc.stdout)
            break
    else:
        pytest.fail("the swap never completed")
    assert crash_at == total_steps + 1 >= 20  # every step was a kill point: files, fsyncs, renames, deletes
    assert outcomes[0] == "v1" and outcomes[-1] == "v2"
    assert outcomes == sorted(outcomes), "once the new copy is complete it is the one found"


def test_resolve_prefers_the_newer_complete_copy(tmp_path):
    final = tmp_path / "last"
    write_version(final, "v1")
    new = tmp_path / ".last.new"
    new.mkdir()
    for name in FILES:
        (new / name).write_text(f"v2-{name}")
    (tmp_path / ".last.tmp").mkdir()  # an incomplete copy is never chosen
    assert durable.resolve_dir(final) == new
    durable.recover_dir(final)
    assert version_of(final) == "v2" and sorted(os.listdir(tmp_path)) == ["last"]


def test_a_failing_writer_leaves_the_old_copy(tmp_path):
    final = tmp_path / "last"
    write_version(final, "v1")

    def fill(folder: Path) -> None:
        (folder / FILES[0]).write_text("partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        durable.replace_dir(final, fill)
    assert version_of(final) == "v1" and sorted(os.listdir(tmp_path)) == ["last"]


def test_write_atomic_keeps_the_old_file_when_the_writer_fails(tmp_path):
    path = tmp_path / "a.json"
    durable.write_atomic(path, b"old")

    def writer(tmp: str) -> None:
        Path(tmp).write_bytes(b"half")
        raise OSError("no space left")

    with pytest.raises(OSError):
        durable.write_atomic(path, writer)
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["a.json"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_write_atomic_gives_a_new_file_the_umasks_permissions_and_keeps_a_replaced_ones(tmp_path):
    old_mask = os.umask(0o027)
    try:
        made = durable.write_atomic(tmp_path / "model.json", b"{}")  # tempfile.mkstemp's file would be 0o600
        assert made.stat().st_mode & 0o777 == 0o640
        made.chmod(0o604)
        durable.write_atomic(made, lambda tmp: Path(tmp).write_bytes(b"[]"))
        assert made.stat().st_mode & 0o777 == 0o604 and made.read_bytes() == b"[]"
    finally:
        os.umask(old_mask)
