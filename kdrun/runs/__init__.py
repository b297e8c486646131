"""Layer 8: one run from a checked config -- the pipeline of stages, launching its processes (DDP, torchrun),
the run folder's writer, status and lock, and the smoke runs of every preset. (``runs``, not ``run``: the
name ``kdrun.run`` is left for the Python API's function.)"""
