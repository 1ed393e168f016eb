"""stageflow: a Kubernetes-native workflow engine.

`stageflow.engine`, `stageflow.api` and `stageflow.operator` are the repository's
top-level `engine/`, `api/` and `operator/` folders, linked in here so the code
imports them under one root without a top-level package named `operator`.
"""

__version__ = "0.1.0"

# Where `stageflow api` listens by default; the client and the CLI look there.
DEFAULT_URL = "http://127.0.0.1:8080"
