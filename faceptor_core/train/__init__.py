"""Training: multi-task learning, two-stage Layer-Attention, auxiliary learning and prompt tuning."""

from .config import RunConfig, load_run_config
from .engine import NonFiniteLossError, Trainer

__all__ = ["NonFiniteLossError", "RunConfig", "Trainer", "load_run_config"]
