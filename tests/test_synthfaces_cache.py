"""The SynthFaces render cache gives back exactly what the painter gives, repaints what is damaged, keeps generators
apart, and never stops a run it cannot write for."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faceptor_core import get_task
from faceptor_tasks.synthfaces import SynthFaces
from faceptor_tasks.synthfaces.cache import RenderCache, cache_key
from faceptor_tasks.synthfaces.dataset import SynthFacesDataset, sample_labels
from faceptor_tasks.synthfaces.demo import RENDER_CACHE, demo_config, train_demo

FAST = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def assert_same_sample(a, b) -> None:
    la, lb = sample_labels(a), sample_labels(b)
    assert np.array_equal(a.image, b.image) and a.image.dtype == b.image.dtype
    for key, value in la.items():
        other = lb[key]
        if isinstance(value, np.ndarray):
            assert value.dtype == other.dtype and np.array_equal(value, other), key
        else:  # Python scalars and the pose dict: same values and types
            assert value == other and type(value) is type(other), key


@FAST
@given(index=st.integers(0, 10**7 + 600), size=st.sampled_from([48, 112]), seed=st.integers(0, 3))
def test_a_cached_sample_is_the_painted_one_bit_for_bit(tmp_path_factory, index, size, seed):
    gen = SynthFaces(seed, size)
    cache = RenderCache(gen, tmp_path_factory.mktemp("cache"))
    written = cache.sample(index)  # painted, then stored
    assert cache.path(index).is_file()
    assert_same_sample(written, gen.sample(index))
    assert_same_sample(cache.sample(index), gen.sample(index))  # read back


def test_a_second_read_does_not_paint(tmp_path, monkeypatch):
    gen = SynthFaces(0, 48)
    cache = RenderCache(gen, tmp_path)
    first = [cache.sample(i) for i in range(5)]

    def refuse(index):
        raise AssertionError(f"sample {index} painted again")

    monkeypatch.setattr(gen, "sample", refuse)
    for i, s in enumerate(first):
        assert_same_sample(cache.sample(i), s)


@pytest.mark.parametrize("damage", ["truncate", "flip_a_byte", "empty"])
def test_a_damaged_file_is_painted_again_and_replaced(tmp_path, damage):
    gen = SynthFaces(0, 48)
    cache = RenderCache(gen, tmp_path)
    cache.sample(7)
    path = cache.path(7)
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[:-100]
    elif damage == "flip_a_byte":
        data[1000] ^= 0xFF
    else:
        data = bytearray()
    path.write_bytes(bytes(data))
    assert_same_sample(cache.sample(7), gen.sample(7))
    assert cache.layout.decode(path.read_bytes()) is not None  # the file was replaced by a sound one


def test_generators_that_paint_differently_keep_separate_folders(tmp_path, monkeypatch):
    keys = {cache_key(SynthFaces(0, 48)), cache_key(SynthFaces(1, 48)), cache_key(SynthFaces(0, 64))}
    keys |= {cache_key(SynthFaces(0, 48, variation=0.5)), cache_key(SynthFaces(0, 48, identity_offset=5))}
    assert len(keys) == 5
    gen = SynthFaces(0, 48)
    before = RenderCache(gen, tmp_path)
    before.sample(0)
    painted = gen.sample

    def repainted(index):  # another version of the painter: one pixel differs
        s = painted(index)
        s.image[0, 0, 0] ^= 1
        return s

    monkeypatch.setattr(gen, "sample", repainted)
    after = RenderCache(gen, tmp_path)
    assert after.folder != before.folder
    assert after.sample(0).image[0, 0, 0] == painted(0).image[0, 0, 0] ^ 1  # not the stale image


def test_an_unwritable_cache_warns_once_and_keeps_painting(tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the cache folder would go")
    gen = SynthFaces(0, 48)
    cache = RenderCache(gen, blocker)
    with pytest.warns(UserWarning, match="cannot write"):
        s0 = cache.sample(0)
    assert_same_sample(s0, gen.sample(0))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_same_sample(cache.sample(1), gen.sample(1))  # no second warning
    assert blocker.read_text() == "a file where the cache folder would go"


def test_synth_tasks_read_their_images_through_the_root_as_a_cache(tmp_path):
    for name in ("synth_landmarks", "synth_age"):
        ds = get_task(name).dataset(str(tmp_path), "train")
        plain = get_task(name).dataset(None, "train")
        for i in (0, 3):
            a, b = ds[i], plain[i]
            assert np.array_equal(a["image"], b["image"])
            assert np.array_equal(np.asarray(a["target"]), np.asarray(b["target"]))
    (folder,) = tmp_path.iterdir()  # both tasks share one folder: the second read the first's images
    assert sorted(p.name for p in folder.iterdir()) == ["0.bin", "3.bin"]
    pairs = get_task("synth_identity").dataset(str(tmp_path), "test")
    plain_pairs = get_task("synth_identity").dataset(None, "test")
    assert np.array_equal(pairs[1]["image_b"], plain_pairs[1]["image_b"])
    assert (
        SynthFacesDataset("test", 48, cache=tmp_path)[2]["target"]["age"]
        == SynthFacesDataset("test", 48)[2]["target"]["age"]
    )


def test_the_demo_caches_in_its_folder_and_removes_the_cache_however_training_ends(tmp_path, monkeypatch):
    out = tmp_path / "demo"
    cfg = demo_config(out, "quick", steps=2)
    assert {t.root for t in cfg.tasks} == {str(out / RENDER_CACHE)}
    import faceptor_tasks.synthfaces.demo as demo

    def fails(*args):
        (out / RENDER_CACHE / "f1-x").mkdir(parents=True)
        (out / RENDER_CACHE / "f1-x" / "0.bin").write_bytes(b"x")
        raise RuntimeError("interrupted")

    monkeypatch.setattr(demo, "_train_stages", fails)
    with pytest.raises(RuntimeError, match="interrupted"):
        train_demo(cfg)
    assert not (out / RENDER_CACHE).exists()


def test_each_demo_stage_stops_its_data_workers_however_it_ends() -> None:
    """The demo stops a stage's data workers when its training ends or fails, before the render cache they paint
    into is removed."""
    from types import SimpleNamespace

    import faceptor_tasks.synthfaces.demo as demo

    closed: list[str] = []

    def trainer(name: str, fit):
        return SimpleNamespace(fit=fit, close_streams=lambda: closed.append(name))

    assert demo.fit_stage(trainer("ok", lambda: {"t": {"m": 1.0}})) == {"t": {"m": 1.0}}

    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        demo.fit_stage(trainer("failed", interrupted))
    assert closed == ["ok", "failed"]
