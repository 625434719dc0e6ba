"""Registry of benchmark suites (``--suite NAME``).

A suite is a stdlib-only module defining ``ENGINES`` (default engine list),
``WORKLOADS`` (name -> one-line description), ``REFERENCE`` (engine whose answer is
the truth) and ``same_answer(a, b)``; optionally ``TABLES`` (TPC-H tables it needs) or
``prepare(sf) -> (data_dir, manifests)`` for its own data, ``check(workload, answer,
reference) -> None | reason`` (preferred over ``same_answer``), ``summary(answer)``
(what the results JSON keeps of an answer), ``PROCESS_PER`` (``run`` or
``workload``, see ``bench.runner``), ``TIMEOUT``, ``DATA_NOTE``, ``ENGINE_WORKLOADS``
(engine -> the only workloads it runs), ``TIME_REFERENCE`` (time the reference engine
even when ``--engines`` leaves it out: the udf suite's figures are relative to it),
``REFERENCES`` (workload -> reference engine, overriding ``REFERENCE``), ``ENVIRONMENT``
(added to every engine process's environment) and ``results_summary(doc)`` (lines shown
under the results table when ``bench.report`` has no summary of its own for the suite).
Engine modules import a suite's parameters so every engine runs the identical query.  Add
a suite here and in RESULTS.md it gets its own section automatically.
"""
from bench.suites import core, ray_cluster, scale, seeds, tpch, udf

SUITES = {"core": core, "tpch": tpch, "seeds": seeds, "udf": udf, "scale": scale,
          "ray": ray_cluster}
