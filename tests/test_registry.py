"""The plugin registry: explicit registration, broken plugins reported by name, clear errors."""

from __future__ import annotations

import sys
import types
from importlib import metadata

import pytest

import faceptor_core
from faceptor_core import TaskNotFoundError, TaskRegistry, TaskSpec, hookimpl
from faceptor_core.registry import DuplicateTaskError
from faceptor_tasks.builtin import PAPER_TASKS


def spec(name: str, **kw) -> TaskSpec:
    base = dict(
        name=name, family="expression", head_type="attribute", output="classification", num_queries=3, input_size=112
    )
    base.update(kw)
    return TaskSpec(**base)


class Plugin:
    def __init__(self, *specs):
        self.specs = specs

    @hookimpl
    def register_tasks(self, register):
        for s in self.specs:
            register(s)


def test_builtin_tasks_come_from_the_entry_point():
    names = [t.name for t in faceptor_core.list_tasks()]
    for name in PAPER_TASKS:
        assert name in names
    assert names == sorted(names)
    assert faceptor_core.default_registry().owner("age_morph2") == "faceptor_tasks"


def test_inline_plugin_registers_and_unregisters():
    reg = TaskRegistry(load_entry_points=False)
    reg.register_plugin(Plugin(spec("toy_a"), spec("toy_b")), name="toy")
    assert [t.name for t in reg.list_tasks()] == ["toy_a", "toy_b"]
    assert reg.owner("toy_b") == "toy"
    reg.unregister_plugin("toy")
    assert reg.list_tasks() == []
    with pytest.raises(TaskNotFoundError):
        reg.get_task("toy_a")


def test_registration_is_not_an_import_side_effect():
    import faceptor_tasks.plugin  # noqa: F401  (importing must not register anything)

    reg = TaskRegistry(load_entry_points=False)
    assert reg.list_tasks() == []


def test_unknown_task_is_a_keyerror_with_suggestions():
    with pytest.raises(KeyError) as info:
        faceptor_core.get_task("landmark_300w")
    assert isinstance(info.value, TaskNotFoundError)
    assert "landmarks_300w" in str(info.value)
    assert info.value.suggestions[0] == "landmarks_300w"


def test_duplicate_task_names_both_plugins_and_keeps_others():
    reg = TaskRegistry(load_entry_points=False)
    reg.register_plugin(Plugin(spec("shared"), spec("only_a")), name="plugin_a")
    reg.register_plugin(Plugin(spec("shared"), spec("only_b")), name="plugin_b")
    with pytest.raises(DuplicateTaskError) as info:
        reg.get_task("shared")
    assert "plugin_a" in str(info.value) and "plugin_b" in str(info.value)
    assert reg.get_task("only_a").name == "only_a"
    broken = {p.name: p for p in reg.list_plugins()}["plugin_b"]
    assert broken.error and "shared" in broken.error


def test_invalid_spec_names_plugin_and_field():
    class Bad:
        @hookimpl
        def register_tasks(self, register):
            register(
                {
                    "name": "bad_task",
                    "family": "age",
                    "head": "attribute",
                    "output": "classification",
                    "num_queries": 0,
                    "input_size": 112,
                }
            )

    reg = TaskRegistry(load_entry_points=False)
    reg.register_plugin(Bad(), name="bad_plugin")
    reg.register_plugin(Plugin(spec("fine")), name="good")
    info = {p.name: p for p in reg.list_plugins()}
    assert "num_queries" in info["bad_plugin"].error
    assert info["good"].ok and reg.get_task("fine")


def test_spec_validation_messages():
    with pytest.raises(ValueError, match="needs head 'dense'"):
        spec("x", output="landmarks")
    with pytest.raises(ValueError, match="involution"):
        TaskSpec(
            name="lm",
            family="landmarks",
            head_type="dense",
            output="landmarks",
            num_queries=3,
            input_size=64,
            flip_permutation=(1, 2, 0),
        )
    with pytest.raises(ValueError, match="label_names"):
        spec("x", label_names=("a", "b"))
    with pytest.raises(ValueError, match="name"):
        spec("Bad Name")


class _FakeEntryPoint:
    def __init__(self, name, target):
        self.name, self.value, self.dist = name, f"fake_{name}:plugin", None
        self._target = target

    def load(self):
        return self._target()


def _fake_entry_points(eps):
    def entry_points(group=None):
        return eps if group == "faceptor" else []

    return entry_points


def test_broken_entry_point_is_reported_by_name(monkeypatch):
    good = types.ModuleType("fake_good")
    good.register_tasks = hookimpl(lambda register: register(spec("good_task")))

    def explode():
        raise ImportError("No module named 'missing_dependency'")

    monkeypatch.setattr(
        metadata,
        "entry_points",
        _fake_entry_points([_FakeEntryPoint("broken", explode), _FakeEntryPoint("good", lambda: good)]),
    )
    reg = TaskRegistry()
    assert [t.name for t in reg.list_tasks()] == ["good_task"]
    plugins = {p.name: p for p in reg.list_plugins()}
    assert not plugins["broken"].ok
    assert "missing_dependency" in plugins["broken"].error
    assert plugins["good"].ok


def test_disable_plugins_env(monkeypatch):
    good = types.ModuleType("fake_good2")
    good.register_tasks = hookimpl(lambda register: register(spec("good_task")))
    monkeypatch.setattr(metadata, "entry_points", _fake_entry_points([_FakeEntryPoint("good", lambda: good)]))
    monkeypatch.setenv("FACEPTOR_DISABLE_PLUGINS", "good, other")
    reg = TaskRegistry()
    assert reg.list_tasks() == []
    assert reg.list_plugins()[0].disabled


def test_cli_tasks_and_plugins(capsys):
    from faceptor_core.cli import main

    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    assert "landmarks_300w" in out and "faceptor_tasks" in out
    assert main(["plugins"]) == 0
    assert "faceptor_tasks" in capsys.readouterr().out


def test_sys_modules_untouched_by_registry_creation():
    before = set(sys.modules)
    TaskRegistry(load_entry_points=False).list_tasks()
    assert not {m for m in set(sys.modules) - before if m.startswith("faceptor_tasks")}
