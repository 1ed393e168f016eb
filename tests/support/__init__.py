"""What the tests share that is not a fixture: helpers, constants and classes.

Test modules and conftest.py files import from here (`from tests.support.api import
submit`); conftest.py files hold only fixtures and hooks. One module per job:
- `api`: talking to the HTTP API (submit, wait for a run or a task, read an event stream);
- `live_api`: a real `stageflow api` process on a free port;
- `workflows`: workflow bodies several tiers submit (the seed, sleeps, failing tasks);
- `engine`: running a body through the engine with a sink that records every publish;
- `overlap`: when tasks ran, and whether they ran at once;
- `polling`: waiting for a condition by polling, bounded in time;
- `redis_server`: a real redis-server on a free port; `orphans`: children that die with us;
- `cluster`: the e2e tier's processes (operator, API) on a real apiserver, and kubectl;
- `failover`: operator candidates with leader election (the failover test and bench);
- `kmock_operator`: the operator against kmock, the mock apiserver of the operator tests;
- `kubelet`: what a kubelet writes when a task's container ends;
- `metrics`: reading a Prometheus page; `rbac`: the permissions derived from the code;
- `chart`: rendering the Helm chart; `chaos` and `node`: the chaos and node tiers' worlds;
- `paths`: where the checkout is.
"""
