"""`explain(analyze=True)`: the physical plan a run executed, annotated with what happened.

Each stage of the plan gets the measured figures of its operators (rows in and out, bytes
out, blocks, wall and CPU time summed over tasks), and, for a stage fed by an exchange, the
spread of partition sizes, the rows each reduce task read, the skewed keys found and the
adaptive decisions taken. Everything comes from the run's `RunStats`; nothing is re-run.
"""

from __future__ import annotations

from statistics import median

from .stats import RunStats, format_bytes


def analyzed_plan(stats: RunStats) -> str:
    plan = stats.physical_plan
    if plan is None:
        return f"run {stats.run_id} has no physical plan to annotate."
    header = (f"== Analyzed physical plan: run {stats.run_id}, {stats.status} in {stats.wall_s:.3f}s ==\n"
              f"(actual figures are summed over each operator's tasks)")
    return header + "\n" + plan.explain(annotate=lambda stage: size_annotations(stage, stats) +
                                          stage_annotations(stage.id, stats))


def size_annotations(stage, stats: RunStats) -> list[str]:
    """A scan's planned size beside what it read: the estimate steers fusion, broadcast and task sizes."""
    scan = getattr(stage, "scan", None)
    measured = stats.operators.get((stage.id, "Scan"))
    if scan is None or measured is None:
        return []
    estimate = scan.source.estimated_bytes(tuple(stage.read_schema.names), scan.predicates)
    if estimate is None:
        return [f"size: no estimate, measured {format_bytes(measured.bytes_out)}"]
    ratio = f" ({estimate / measured.bytes_out:.2f}x)" if measured.bytes_out else ""
    filtered = " (after the filters the reader applied)" if stage.scan_request.pushed_predicates else ""
    return [f"size: estimated {format_bytes(estimate)} before filters, measured {format_bytes(measured.bytes_out)}"
            f"{filtered}{ratio}"]


def stage_annotations(stage_id: int, stats: RunStats) -> list[str]:
    lines = []
    for op in stats.operator_list():
        if op.stage_id == stage_id:
            lines.append(f"actual {op.name}: {op.rows_in:,} -> {op.rows_out:,} rows, {format_bytes(op.bytes_out)} out, "
                         f"{op.blocks:,} blocks, {op.wall_s:.3f}s wall, {op.cpu_s:.3f}s cpu")
    for exchange in stats.exchanges:
        if exchange["stage"] == stage_id:
            lines.append(_partition_spread(exchange))
    tasks = stats.reduce_tasks.get(stage_id)
    if tasks:
        typical = median(tasks)
        ratio = f" ({max(tasks) / typical:.1f}x the median)" if typical else ""
        lines.append(f"reduce tasks: {len(tasks):,}, rows per task median {typical:,.0f}, max {max(tasks):,}{ratio}")
    for key in stats.skewed_keys:
        if key["stage"] == stage_id:
            lines.append(f"skewed key {key['key']}: {key['rows']:,} rows")
    prefix = f"stage {stage_id}: "
    lines += [f"adaptive: {note[len(prefix):]}" for note in stats.notes if note.startswith(prefix)]
    return lines


def _partition_spread(exchange: dict) -> str:
    rows, sizes = exchange["partition_rows"], exchange["partition_bytes"]
    live = [i for i, r in enumerate(rows) if r]
    if not live:
        return f"exchange partitions: {len(rows)}, all empty"
    live_rows = [rows[i] for i in live]
    live_bytes = [sizes[i] for i in live]
    return (f"exchange partitions: {len(live)} non-empty of {len(rows)}; rows median {median(live_rows):,.0f}, "
            f"max {max(live_rows):,}; bytes median {format_bytes(int(median(live_bytes)))}, "
            f"max {format_bytes(max(live_bytes))}")
