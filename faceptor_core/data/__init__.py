"""Data plumbing shared by every task: reproducible per-task streams and per-size collation."""

from .collate import collate_items, group_by_size
from .streams import SeededItems, TaskStream, seed_for

__all__ = ["SeededItems", "TaskStream", "collate_items", "group_by_size", "seed_for"]
