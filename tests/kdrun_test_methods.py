"""Methods that exist only for tests, loaded by the CLI through ``method._target_=kdrun_test_methods.<Name>``
(the tests put this folder on PYTHONPATH).

``RowBank`` follows CRD's memory-bank pattern: one buffer row per training sample, written from
every batch, so a data-parallel run is correct only if every rank applies the global batch.
``Fails`` stands for a job that crashes in training with an unexpected (non-kdrun) exception.
"""

from __future__ import annotations

import torch

from kdrun.distributed import all_gather_rows
from kdrun.methods.base import Method, MethodContext, Needs


class RowBank(Method):
    needs = Needs(features=True, sample_index=True)

    def __init__(self, ctx: MethodContext, gather: bool = True) -> None:
        super().__init__(ctx)
        self.gather = gather
        self.register_buffer("bank", torch.zeros(ctx.data.num_train, ctx.student.pooled_dim))
        self.register_buffer("seen", torch.zeros(ctx.data.num_train))

    def forward(self, s, t, batch, progress) -> dict[str, torch.Tensor]:
        index, rows = batch.index, s.pooled.detach()
        if self.gather:
            index, rows = all_gather_rows(index, rows)
        self.bank.index_copy_(0, index, rows)
        self.seen[index] += 1
        return {"bank": (s.pooled * 0).sum()}  # in the graph, changes nothing


class Fails(Method):
    """Builds fine (so the pre-run compatibility check passes), then crashes in its first step."""

    needs = Needs(features=True)

    def forward(self, s, t, batch, progress) -> dict[str, torch.Tensor]:
        raise RuntimeError("this method always fails (a test of failed sweep jobs)")
