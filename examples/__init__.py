"""Runnable examples of stageflow workflows."""
