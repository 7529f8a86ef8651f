"""Gaze estimation as a Faceptor task plugin: pitch and yaw from two task queries."""

__version__ = "0.1.0"
