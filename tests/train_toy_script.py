"""Run a toy training from a JSON run config (used by the kill-and-resume test as a subprocess)."""

import sys
from pathlib import Path

import torch

from faceptor_core.registry import default_registry
from faceptor_core.train import RunConfig, Trainer
from tests.toytasks import ToyPlugin

if __name__ == "__main__":
    torch.set_num_threads(1)
    default_registry().register_plugin(ToyPlugin(), name="toy")
    cfg = RunConfig.model_validate_json(Path(sys.argv[1]).read_text())
    Trainer(cfg, resume=len(sys.argv) > 2).fit()
