"""A data-quality pipeline as a stageflow workflow (pipeline.json), with its tasks (tasks.py)."""
