"""Everything that streams a run, in one place: its events (server-sent and over the
WebSocket), its tasks' logs followed as they grow, and the bound on open streams.

- `events.py`: a run's events as (kind, JSON), and the followed-log answer;
- `logs.py`: following a task's log across replicas by polling its bounded text;
- `socket.py`: the WebSocket session (its token, its checks, events and logs on one socket);
- `slots.py`: how many streams a client, and a process, may hold open.

The routes themselves stay in api/routes/ (streams.py: the WebSocket; workflows.py: SSE
and logs), and only call into here.
"""
