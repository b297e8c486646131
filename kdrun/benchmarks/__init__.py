"""The published benchmark tables (CIFAR-100, ImageNet) as data, the presets generated from them,
smoke runs of every preset, and the comparison of kdrun's runs with the published numbers."""
