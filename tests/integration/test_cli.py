"""The `sluice` command line: run, explain and demo, as a user would call them."""

import os
import subprocess
import sys
import textwrap

import pytest

PIPELINE = textwrap.dedent("""
    import sluice as sl
    from sluice import col

    numbers = sl.range(1000).with_columns(even=col("id") % 2 == 0)
    evens = numbers.filter(col("even")).select("id")
    print("COUNT", evens.count())
""")


def sluice(*args, cwd=None):
    env = {**os.environ, "SLUICE_PROGRESS": "0"}
    return subprocess.run([sys.executable, "-m", "sluice", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


@pytest.fixture
def script(tmp_path, runner):
    path = tmp_path / "pipeline.py"
    path.write_text(PIPELINE)
    return path


def test_run_executes_script_and_prints_summary(script):
    result = sluice("run", str(script))
    assert result.returncode == 0, result.stderr
    assert "COUNT 500" in result.stdout
    assert "sluice run" in result.stdout and "succeeded" in result.stdout and "rows" in result.stdout


def test_explain_prints_plans_without_running(script):
    result = sluice("explain", str(script))
    assert result.returncode == 0, result.stderr
    assert "== Optimized plan ==" in result.stdout and "== Physical plan ==" in result.stdout
    assert "COUNT 0" in result.stdout  # the action returned an empty result instead of running
    assert "read no data" in result.stdout and "write nothing" in result.stdout  # it says so before the script
    assert result.stdout.count("### plan") == 1  # the one dataset an action ran on
    assert "dataset `numbers`" not in result.stdout  # intermediates only when asked
    everything = sluice("explain", "--all", str(script))
    assert "dataset `numbers`" in everything.stdout


def test_explain_writes_nothing_and_names_a_single_file_scan(tmp_path, runner):
    import pyarrow as pa
    import pyarrow.parquet as pq
    source = tmp_path / "lake" / "events.parquet"
    source.parent.mkdir()
    pq.write_table(pa.table({"id": list(range(10))}), source)
    (tmp_path / "job.py").write_text(textwrap.dedent(f"""
        import sluice as sl
        from sluice import col
        staged = sl.read_parquet({str(source)!r}).filter(col("id") > 2)
        result = staged.write_parquet({str(tmp_path / "out")!r})
        print("WROTE", result.rows)
    """))
    result = sluice("explain", str(tmp_path / "job.py"))
    assert result.returncode == 0, result.stderr
    assert f"parquet {source} (1 file)" in result.stdout  # the file, not its folder
    assert "WROTE 0" in result.stdout and not (tmp_path / "out").exists()
    assert "dataset `staged`" not in result.stdout
    nothing = tmp_path / "no_action.py"
    nothing.write_text(f"import sluice as sl\nstaged = sl.read_parquet({str(source)!r})\n")
    hint = sluice("explain", str(nothing))
    assert "runs no action" in hint.stdout and "--all" in hint.stdout


def test_missing_script_is_a_clear_error(tmp_path):
    result = sluice("run", str(tmp_path / "nope.py"))
    assert result.returncode == 1
    assert "No such pipeline script" in result.stderr


def test_demo_runs_to_completion(tmp_path):
    result = sluice("demo", "--dir", str(tmp_path / "lake"), "--rows", "20000")
    assert result.returncode == 0, result.stderr
    assert "malformed late rows" in result.stdout
    assert (tmp_path / "lake" / "output" / "events_enriched" / "_SUCCESS").exists()
    assert (tmp_path / "lake" / "output" / "rejected_late_events" / "_SUCCESS").exists()
    # it ends with the run summary and the path of the run's HTML report
    tail = result.stdout[result.stdout.index("Summary"):]
    assert "bytes processed" in tail and "operators" in tail
    report = tail.split("Report: ", 1)[1].split()[0]
    assert report.endswith("report.html") and os.path.isfile(report)
    assert '<section class="chart"' in open(report).read()


FAILING_UDF = textwrap.dedent("""\
    import sluice as sl


    def explode(batch):
        if batch.num_rows:
            raise ZeroDivisionError("boom in the pipeline script")
        return batch


    sl.range(100).map_batches(explode, compute="processes").to_arrow()
""")


def test_a_script_udf_error_shows_the_scripts_file_line_and_source(tmp_path, runner):
    """A function defined in the script travels by value (cloudpickle); its traceback, raised in a worker
    process or a Ray task, still names the script's file and line and shows the source text."""
    path = tmp_path / "failing.py"
    path.write_text(FAILING_UDF)
    result = sluice("run", str(path))
    assert result.returncode != 0
    assert "ZeroDivisionError: boom in the pipeline script" in result.stderr, result.stderr
    assert f'File "{path}", line 6, in explode' in result.stderr, result.stderr
    assert 'raise ZeroDivisionError("boom in the pipeline script")' in result.stderr, result.stderr
    assert "<dynamic-code>" not in result.stderr
