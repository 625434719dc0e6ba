"""The figures a progress bar shows: a stage's estimated total, exact once it ends, and UDF rows that count
while their task runs (observe/progress.py), with no terminal needed."""

from sluice.observe.progress import Progress


def test_a_scan_with_known_row_ranges_estimates_them_and_ends_exact():
    progress = Progress(enabled=False)
    progress.start_stage(0, "stage 0: Scan -> Filter", tasks_total=4, known_rows=1000)
    assert progress.total(0) == (1000, False)
    progress.advance(0, 200)  # a filter dropped rows: the estimate stays an upper bound until the end
    assert progress.total(0) == (1000, False)
    progress.advance(0, 150)
    progress.end_stage(0)
    assert progress.total(0) == (350, True)


def test_without_row_ranges_the_rows_per_task_so_far_scale_to_every_task():
    progress = Progress(enabled=False)
    progress.start_stage(0, "scan", tasks_total=10)
    assert progress.total(0) == (None, False)  # nothing known before the first task ends
    progress.advance(0, 300)
    progress.advance(0, 100)
    assert progress.total(0) == (2000, False)


def test_a_stage_after_others_takes_their_totals_then_its_own_rows():
    progress = Progress(enabled=False)
    progress.start_stage(1, "left", tasks_total=2, known_rows=500)
    progress.start_stage(2, "right", tasks_total=2, known_rows=300)
    progress.start_stage(3, "join", tasks_total=None, upstreams=(1, 2))
    assert progress.total(3) == (800, False)
    progress.advance(1, 500)
    progress.end_stage(1)
    progress.advance(2, 100)
    progress.end_stage(2)  # its inputs ended: 600 rows in
    assert progress.total(3) == (600, False)
    progress.advance(3, 650)  # more rows out than in (a join that fans out): the estimate follows
    assert progress.total(3) == (650, False)


def test_udf_rows_count_while_their_task_runs_and_once_when_it_ends():
    progress = Progress(enabled=False)
    progress.start_stage(0, "udf", tasks_total=1, known_rows=100)
    progress.advance_partial(0, 40)
    progress.advance_partial(0, 40)
    assert progress.stages[0].rows == 80
    progress.advance_partial(0, -80)  # the task is about to report its rows whole
    progress.advance(0, 100)
    progress.end_stage(0)
    assert progress.stages[0].rows == 100 and progress.total(0) == (100, True)
