"""The published benchmark tables (CIFAR-100, ImageNet) as data, and where trained teachers lie. Presets
generated from them are in ``kdrun.config.presets``, smoke runs in ``kdrun.runs.smoke``, the comparison of
kdrun's runs with the published numbers in ``kdrun.report.compare``."""
