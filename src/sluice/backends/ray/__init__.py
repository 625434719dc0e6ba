"""The Ray backend: the engine's stages as Ray tasks and actors over object refs.

backend.py submits tasks and holds exchange pieces as refs, remote.py is what runs inside Ray
workers, actors.py the class-UDF actor pools, cluster.py connects. Importing this package
does not import Ray; starting a run does.
"""
