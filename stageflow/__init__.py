"""stageflow: a Kubernetes-native workflow engine.

`stageflow.engine`, `stageflow.api` and `stageflow.operator` are the repository's
top-level `engine/`, `api/` and `operator/` folders, linked in here so the code
imports them under one root without a top-level package named `operator`.
"""

__version__ = "0.1.0"
