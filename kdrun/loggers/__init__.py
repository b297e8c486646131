"""Layer 3: experiment trackers behind one small interface (base.py's Logger) that the run's writer calls:
TensorBoard (the default), MLflow, Weights & Biases, CSV; chosen with the ``logger`` config group."""
