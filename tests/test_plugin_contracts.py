"""Broken plugins are isolated and blamed by name: exits at import, names taken from the built-ins, and
callables that break their contract where they are used."""

from __future__ import annotations

import types
from importlib import metadata

import pytest
import torch

import faceptor_core
from faceptor_core import TaskRegistry, TaskSpec, hookimpl
from faceptor_core.cli import main
from faceptor_core.errors import PluginContractError
from faceptor_core.evaluate import evaluate_task
from faceptor_core.train import RunConfig, Trainer
from tests.conftest import TINY_DECODER, tiny_build
from tests.toytasks import toy_specs


def spec(name: str, **kw) -> TaskSpec:
    base = dict(
        name=name, family="expression", head_type="attribute", output="classification", num_queries=3, input_size=32
    )
    base.update(kw)
    return TaskSpec(**base)


class Plugin:
    def __init__(self, *specs, returns=None):
        self.specs, self.returns = specs, returns

    @hookimpl
    def register_tasks(self, register):
        for s in self.specs:
            register(s)
        return self.returns


class _Dist:
    def __init__(self, name):
        self.metadata, self.version = {"Name": name}, "1.0"


class _EntryPoint:
    def __init__(self, name, target, dist=None):
        self.name, self.value, self.dist, self._target = name, f"{name}_module:plugin", dist, target

    def load(self):
        return self._target()


def fake_entry_points(monkeypatch, eps):
    monkeypatch.setattr(metadata, "entry_points", lambda group=None: eps if group == "faceptor" else [])


def module_with(*specs):
    mod = types.ModuleType(f"fake_{specs[0].name}")
    mod.register_tasks = hookimpl(lambda register: [register(s) for s in specs] and None)
    return mod


@pytest.mark.parametrize("exc", [SystemExit(3), SystemExit("bye"), GeneratorExit(), BaseException("odd")])
def test_a_plugin_exiting_at_import_is_isolated(monkeypatch, exc):
    def explode():
        raise exc

    fake_entry_points(
        monkeypatch, [_EntryPoint("exits", explode), _EntryPoint("good", lambda: module_with(spec("good_task")))]
    )
    reg = TaskRegistry()
    assert reg.task_names() == ["good_task"]
    broken = {p.name: p for p in reg.list_plugins()}["exits"]
    assert not broken.ok and type(exc).__name__ in broken.error


def test_a_plugin_exiting_while_registering_is_isolated():
    class Exits:
        @hookimpl
        def register_tasks(self, register):
            register(spec("kept_before_exit"))
            raise SystemExit(1)

    reg = TaskRegistry(load_entry_points=False)
    reg.register_plugin(Exits(), name="exits")
    reg.register_plugin(Plugin(spec("fine")), name="good")
    assert reg.task_names() == ["fine", "kept_before_exit"]
    assert "SystemExit" in {p.name: p for p in reg.list_plugins()}["exits"].error


def test_keyboard_interrupt_still_stops_the_program(monkeypatch):
    def interrupt():
        raise KeyboardInterrupt

    fake_entry_points(monkeypatch, [_EntryPoint("slow", interrupt)])
    with pytest.raises(KeyboardInterrupt):
        TaskRegistry().task_names()


def test_a_plugin_taking_a_builtin_name_is_blamed_and_the_builtin_kept(monkeypatch):
    builtin = spec("landmarks_mine", family="landmarks", head_type="dense", output="landmarks", num_queries=5)
    impostor = spec("landmarks_mine")
    # the impostor sorts first by name: precedence must not depend on names
    fake_entry_points(
        monkeypatch,
        [
            _EntryPoint("aaa", lambda: module_with(impostor, spec("aaa_own"))),
            _EntryPoint("faceptor_tasks", lambda: module_with(builtin), dist=_Dist("faceptor")),
        ],
    )
    reg = TaskRegistry()
    assert reg.get_task("landmarks_mine").head_type == "dense"
    assert reg.owner("landmarks_mine") == "faceptor_tasks"
    assert reg.task_names() == ["aaa_own", "landmarks_mine"]
    plugins = {p.name: p for p in reg.list_plugins()}
    assert plugins["faceptor_tasks"].ok
    assert "landmarks_mine" in plugins["aaa"].error and "built-in" in plugins["aaa"].error


def test_faceptor_tasks_keeps_working_when_a_plugin_claims_a_builtin_name(capsys):
    reg = faceptor_core.default_registry()
    reg.register_plugin(Plugin(spec("landmarks_300w"), spec("aaa_extra")), name="aaa_claims_300w")
    try:
        assert main(["tasks"]) == 0
        out = capsys.readouterr().out
        row = next(line for line in out.splitlines() if line.startswith("landmarks_300w "))
        assert "dense" in row and "faceptor_tasks" in row
        assert "aaa_extra" in out
        assert main(["plugins"]) == 1
        out = capsys.readouterr().out
        assert "aaa_claims_300w" in out and "BROKEN" in out and "landmarks_300w" in out
    finally:
        reg.unregister_plugin("aaa_claims_300w")
    assert faceptor_core.get_task("landmarks_300w").plugin == "faceptor_tasks"


def test_two_plugins_claiming_a_name_leave_the_listing_working():
    reg = TaskRegistry(load_entry_points=False)
    reg.register_plugin(Plugin(spec("shared"), spec("only_a")), name="plugin_a")
    reg.register_plugin(Plugin(spec("shared")), name="plugin_b")
    assert reg.task_names() == ["only_a"]  # the ambiguous name is listed nowhere, blamed in list_plugins
    assert [t.name for t in reg.list_tasks()] == ["only_a"]


def test_a_hook_returning_garbage_is_reported():
    reg = TaskRegistry(load_entry_points=False)
    reg.register_plugin(Plugin(returns=[spec("never_registered")]), name="returns_list")
    info = {p.name: p for p in reg.list_plugins()}["returns_list"]
    assert "register_tasks returned list" in info.error


def test_a_decode_returning_the_wrong_type_names_task_plugin_and_callable():
    def bad_decode(raw, image_hw):
        return {"values": raw}

    reg = TaskRegistry(load_entry_points=False)
    reg.register_plugin(
        Plugin(spec("decoded", output="regression", head_type="attribute", num_queries=2, decode=bad_decode)),
        name="decoder_plugin",
    )
    model = tiny_build(["decoded"], registry=reg)
    with pytest.raises(PluginContractError) as info:
        model.predict(torch.rand(1, 3, 32, 32))
    msg = str(info.value)
    assert "'decoded'" in msg and "'decoder_plugin'" in msg and "bad_decode" in msg and "dict" in msg


# -- training and evaluation callables ----------------------------------------------------------------
def toy_registry(**updates):
    specs = [s.model_copy(update=updates) if s.name == "toy_channel" else s for s in toy_specs()]
    reg = TaskRegistry(load_entry_points=False)
    reg.register_plugin(Plugin(*specs), name="toy_plugin")
    return reg


def config(tmp_path) -> RunConfig:
    return RunConfig.model_validate(
        {
            "output_dir": str(tmp_path / "run"),
            "progress": False,
            "model": {"encoder": "vit_t16", "decoder": TINY_DECODER},
            "tasks": [{"name": "toy_channel", "batch_size": 4}],
            "schedule": {"steps": 1, "warmup_steps": 0},
        }
    )


def returns_none(*args, **kwargs):
    return None


class NoCompute:
    def update(self, *args):
        pass


class TextCompute(NoCompute):
    def compute(self):
        return "accuracy is fine"


@pytest.mark.parametrize(
    "field, value, fragment",
    [
        ("dataset", returns_none, "dataset callable tests.test_plugin_contracts.returns_none returned NoneType"),
        ("transforms", lambda split, size: 42, "transforms callable"),
        ("loss", lambda spec: "cross entropy", "loss callable"),
        ("loss", lambda spec: lambda raw, target: raw, "expected a scalar tensor"),
    ],
)
def test_training_callables_breaking_their_contract_are_named(tmp_path, field, value, fragment):
    reg = toy_registry(**{field: value})
    with pytest.raises(PluginContractError) as info:
        Trainer(config(tmp_path), registry=reg).train_step()
    msg = str(info.value)
    assert "task 'toy_channel' (plugin 'toy_plugin')" in msg and fragment in msg


@pytest.mark.parametrize(
    "field, value, fragment",
    [
        ("dataset", returns_none, "dataset callable"),
        ("metrics", lambda spec: NoCompute(), "without compute()"),
        ("metrics", lambda spec: TextCompute(), "compute() returned str"),
    ],
)
def test_evaluation_callables_breaking_their_contract_are_named(field, value, fragment):
    reg = toy_registry(**{field: value})
    model = tiny_build(["toy_channel"], registry=reg)
    with pytest.raises(PluginContractError) as info:
        evaluate_task(model, reg.get_task("toy_channel"), None, "test", limit=4)
    msg = str(info.value)
    assert "task 'toy_channel' (plugin 'toy_plugin')" in msg and fragment in msg
