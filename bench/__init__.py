"""sluice benchmark harness.

Exists so that sluice's speed claims are measured side by side with other
engines in the same run, on the same data, with the same thread budget, and
recorded in files that are committed (``bench/results/*.json``,
``bench/RESULTS.md``).  Entry point: ``python -m bench run --suite core``.

Layout:
  data.py       generate/cache TPC-H Parquet with tpchgen-cli
  suites/       what to run: workloads and their shared parameters
  engines/      one module per engine; each runs in its own subprocess
  runner.py     spawns engine runs, checks answers, aggregates timings
  report.py     writes results/<suite>-<timestamp>.json and RESULTS.md
  machine.py    machine/software description recorded with every result

The parent process only uses the standard library, so engines can live in
their own virtualenvs (``bench/.venvs/<engine>``) without the harness needing
to import them.
"""
