"""The Ray runner: the same physical plans, run as Ray tasks and actors over object refs.

executor.py drives narrow stages, exchange.py wide ones (with the adaptive rules), actors.py
the class-UDF actor pools, tasks.py is what runs inside Ray workers, cluster.py connects.
Importing this package does not import Ray; `RayRunner.execute` does.
"""
