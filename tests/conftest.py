"""Shared fixtures: tiny model configurations that run in milliseconds on a CPU."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

# The example plugin of this checkout, not another checkout's copy installed in editable mode (its entry point
# names the module; sys.path is searched before the editable-install finders; appended, not prepended, so that
# the plugin's own tests/ package does not shadow this one).
_PLUGIN = str(Path(__file__).resolve().parents[1] / "plugins_example" / "faceptor-task-gaze")
if _PLUGIN not in sys.path:
    sys.path.append(_PLUGIN)

os.environ.setdefault("OMP_NUM_THREADS", "2")
torch.set_num_threads(min(2, torch.get_num_threads()))

TINY_DECODER = {"hidden_dim": 32, "num_heads": 4, "ffn_dim": 64, "num_layers": 2}
TINY_NAIVE = {"attribute_channels": 8, "dense_channels": 16}


def tiny_build(tasks, variant: str = "faceptor", size: int | dict | None = None, **kw):
    """A vit_t16 model with a small decoder; dense tasks at 64 px and the others at 32 px by default."""
    import faceptor_core

    if size is None:
        registry = kw.get("registry") or faceptor_core.default_registry()
        size = {}
        for t in tasks:
            spec = t if isinstance(t, faceptor_core.TaskSpec) else registry.get_task(t)
            size[spec.name] = 64 if spec.head_type == "dense" else 32
    torch.manual_seed(0)
    return faceptor_core.build(
        tasks, variant=variant, encoder="vit_t16", input_sizes=size, decoder=TINY_DECODER, naive=TINY_NAIVE, **kw
    )


@pytest.fixture
def registry():
    """A registry of the toy tasks only (tests/toytasks.py), no entry points; a test module may define its own."""
    from faceptor_core import TaskRegistry
    from tests.toytasks import ToyPlugin

    reg = TaskRegistry(load_entry_points=False)
    reg.register_plugin(ToyPlugin(), name="toy")
    return reg


@pytest.fixture
def images() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.rand(2, 3, 48, 48, generator=g)
