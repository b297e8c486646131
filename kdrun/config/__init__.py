"""Layer 7: everything decided before a run folder exists -- the ConfigStore, the schema of every value,
pre-flight checks, the headline default, experiment presets, sweeps and their workers, ``--list``. No torch
at import time."""
