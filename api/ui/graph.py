"""A run's tasks drawn as a graph, server-side, as SVG the web page inlines.

Drawn here rather than by a JavaScript graph library: the layout of a stageflow run
is simple (columns by the length of a task's longest chain of dependencies, tasks
top to bottom in declaration order) and the page then only changes each node's
phase, so nothing needs vendoring and the drawing can be tested in Python. Each node
is a `<g id="node-ID" data-task="ID">` the page finds to recolour and relabel; its
phase is written in words as well as coloured. A `forEach` task's node has a third line,
its instances counted by phase (`✓ 9,990 ▶ 10 ✗ 0 of 10,000`): never a node per
instance, so a fan-out of ten thousand is still one node. A run's `finally` tasks are drawn apart,
in columns of their own to the right of a dashed divider labelled "finally": they wait for
the whole main graph, which no single edge could say.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape

from stageflow.engine import TaskPhase
from stageflow.engine.plan import dependencies
from stageflow.models.folding import fanout_summaries
from stageflow.models.records import RunRecord
from stageflow.models.status import PHASE_MARKS, FanoutSummary

WIDTH, HEIGHT = 200, 58
FANOUT_HEIGHT = 80  # every node of a graph with a forEach task: room for its counts
# A fan-out's counts: these phases always, these others only when some instance is in them
# (Pending is what "of N" leaves); run.js writes the same line when an update comes.
COUNTED = ("Succeeded", "Running", "Failed")
COUNTED_WHEN_ANY = ("Waiting", "Skipped", "Cancelled")
COLUMN_GAP, ROW_GAP, MARGIN = 72, 18, 12
MAX_LABEL = 24
LABEL_HEIGHT = 22  # room above the nodes for the "finally" label


def columns(edges: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Tasks by the length of their longest chain of dependencies, in declaration order."""
    depth: dict[str, int] = {}
    for task_id in edges:  # declaration order lists a dependency first, except in a DAG
        _depth(task_id, edges, depth, frozenset())
    found: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for task_id in edges:
        found[depth[task_id]].append(task_id)
    return found


def _depth(
    task_id: str, edges: Mapping[str, Iterable[str]], depth: dict[str, int], seen: frozenset[str]
) -> int:
    if task_id not in depth:
        parents = [p for p in edges.get(task_id, ()) if p in edges and p not in seen]
        depth[task_id] = 1 + max(
            (_depth(p, edges, depth, seen | {task_id}) for p in parents), default=-1
        )
    return depth[task_id]


def _final_ids(record: RunRecord) -> list[str]:
    """The ids of the run's `finally` tasks (its spec is stored normalised: each is named)."""
    return [
        entry if isinstance(entry, str) else entry.name or entry.task or ""
        for entry in record.spec.finally_ or []
    ]


def _for_each_ids(record: RunRecord) -> set[str]:
    """The run's forEach tasks (each has a node; its instances have none)."""
    spec = record.spec
    entries = [entry for stage in spec.workflow or [] for entry in stage.tasks]
    entries += [*(spec.dag or []), *(spec.finally_ or [])]
    return {
        entry.name or entry.task or ""
        for entry in entries
        if not isinstance(entry, str) and entry.for_each is not None
    }


def _fanouts(record: RunRecord) -> dict[str, FanoutSummary]:
    """Counted from whole entries and, of a run read as stored, from its groups' ranges."""
    return fanout_summaries(record.status.tasks, record.status.folded or ())


def _counted(fanout: FanoutSummary) -> list[tuple[str, int]]:
    """(phase, count) of the phases a node shows: always COUNTED, the rest when any."""
    phases = fanout.phases
    shown = [*COUNTED, *(phase for phase in COUNTED_WHEN_ANY if phases.get(phase))]
    return [(phase, phases.get(phase, 0)) for phase in shown]


def fanout_text(fanout: FanoutSummary | None) -> str:
    """`✓ 9,990 ▶ 10 ✗ 0 of 10,000`: a forEach node's third line."""
    if fanout is None:
        return "no instances yet"
    counts = " ".join(f"{PHASE_MARKS[phase]} {count:,}" for phase, count in _counted(fanout))
    return f"{counts} of {fanout.total:,}"


def fanout_words(fanout: FanoutSummary | None) -> str:
    """The same in words, for a screen reader: `10,000 instances: 9,990 Succeeded, …`."""
    if fanout is None:
        return "no instances yet"
    counts = ", ".join(f"{count:,} {phase}" for phase, count in _counted(fanout))
    return f"{fanout.total:,} instances: {counts}"


def _label(text: str) -> str:
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"


def run_graph_svg(record: RunRecord) -> str:
    """The SVG of `record`'s tasks and the edges between them, each node in its phase.

    An edge is solid for order (a stage's position, `dependsOn`) and dashed for data only
    (the task reads the other's outputs through a reference); the page's legend says so."""
    edges = dependencies(record.spec)
    final = set(_final_ids(record))
    fanned = _for_each_ids(record)
    fanouts = _fanouts(record) if fanned else {}
    node_height = FANOUT_HEIGHT if fanned else HEIGHT
    main_layout = columns({tid: parents for tid, parents in edges.items() if tid not in final})
    final_layout = columns({tid: parents for tid, parents in edges.items() if tid in final})
    layout = main_layout + final_layout
    top = LABEL_HEIGHT if final_layout else 0
    place: dict[str, tuple[int, int]] = {}
    for column, task_ids in enumerate(layout):
        for row, task_id in enumerate(task_ids):
            place[task_id] = (
                MARGIN + column * (WIDTH + COLUMN_GAP),
                top + MARGIN + row * (node_height + ROW_GAP),
            )
    width = MARGIN * 2 + max(len(layout), 1) * (WIDTH + COLUMN_GAP) - COLUMN_GAP
    height = (
        top
        + MARGIN * 2
        + max((len(c) for c in layout), default=1) * (node_height + ROW_GAP)
        - ROW_GAP
    )
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="run-graph" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="group" '
        f'aria-label="Tasks of run {escape(record.run_id)}">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" '
        'class="arrow"/></marker></defs>',
    ]
    if final_layout:
        x = MARGIN + len(main_layout) * (WIDTH + COLUMN_GAP) - COLUMN_GAP // 2
        parts.append(
            f'<g class="finally-group"><line class="divider" x1="{x}" y1="0" x2="{x}" '
            f'y2="{height}"/><text x="{x + COLUMN_GAP // 2}" y="{MARGIN + 10}" '
            'class="group-label">finally: after the rest, whatever its outcome</text></g>'
        )
    for task_id, parents in edges.items():
        x2, y2 = place[task_id]
        for parent, kind in parents.items():
            if parent not in place:
                continue
            x1, y1 = place[parent]
            start, end = (x1 + WIDTH, y1 + node_height // 2), (x2, y2 + node_height // 2)
            bend = (end[0] - start[0]) // 2
            parts.append(
                f'<path class="edge edge-{kind}" data-kind="{kind}" data-from="{escape(parent)}" '
                f'data-to="{escape(task_id)}" '
                f'd="M {start[0]} {start[1]} C {start[0] + bend} {start[1]}, '
                f'{end[0] - bend} {end[1]}, {end[0]} {end[1]}" marker-end="url(#arrow)"/>'
            )
    for task_id, (x, y) in place.items():
        status = record.status.tasks.get(task_id)
        phase = status.phase if status is not None else TaskPhase.PENDING
        name = escape(task_id)
        label, counts, marked = f"{name}: {phase}", "", ""
        if task_id in fanned:
            fanout = fanouts.get(task_id)
            label += f"; {fanout_words(fanout)}"
            counts = f'<text x="12" y="67" class="fanout">{fanout_text(fanout)}</text>'
            marked = ' data-fanout="true"'
        parts.append(
            f'<g id="node-{name}" class="node phase-{phase}" data-task="{name}" tabindex="0" '
            f'role="button" aria-label="{label}" transform="translate({x},{y})"{marked}>'
            f"<title>{name}</title>"
            f'<rect width="{WIDTH}" height="{node_height}" rx="8"/>'
            f'<text x="12" y="23" class="name">{escape(_label(task_id))}</text>'
            f'<text x="12" y="45" class="phase">{PHASE_MARKS[phase]} {phase}</text>'
            f"{counts}</g>"
        )
    parts.append("</svg>")
    return "".join(parts)
