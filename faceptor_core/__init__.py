"""Faceptor: one shared encoder for every face task; tasks come from plugins."""
__version__ = "0.1.0"
