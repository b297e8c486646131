"""Schemes decide which models train and who teaches whom; each yields Stages (see registry.py)."""
