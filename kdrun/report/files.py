"""Names of the files a run writes (how to write them safely: :mod:`kdrun.io`)."""

from __future__ import annotations

METRICS_FILE = "metrics.jsonl"
RESULTS_FILE = "results.json"
TABLE_MD = "table.md"
TABLE_CSV = "table.csv"
