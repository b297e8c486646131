"""Deep mutual learning: Zhang, Xiang, Hospedales and Lu, "Deep Mutual Learning", CVPR 2018.

N peers train from scratch together, with no pre-trained teacher. Peer i minimizes

    gamma * CE(z_i, y) + alpha * mean_{j != i} T^2 * KL(softmax(z_j / T) || softmax(z_i / T))

with every other peer's prediction detached, so each term trains only peer i. The paper updates
peers in turn within a step; here one optimizer step updates all peers on the same batch, which
with detached targets gives each peer the same gradient as the paper's rule at the start of the
step (the common implementation). The paper's setting is T=1, alpha=gamma=1 (``scheme=dml``).
Every peer is evaluated each epoch and is a row of the table.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from kdrun.build import loss_weights, optim_settings
from kdrun.engine.stage import Stage
from kdrun.engine.task import Batch, Progress, StepOutput, Task
from kdrun.errors import KdrunError
from kdrun.methods.base import LossWeights
from kdrun.methods.kd import kd_loss
from kdrun.schemes.context import SchemeContext
from kdrun.schemes.requires import needed

STAGES = ("baseline", "mutual")
PEER_KEYS = ("student", "teacher")


class MutualTask(Task):
    """One task over all peers: one forward per peer, one summed loss, one optimizer."""

    def __init__(self, peers: list[nn.Module], weights: LossWeights) -> None:
        super().__init__()
        if len(peers) < 2:
            raise ValueError("mutual learning needs at least two peers")
        self.peers = nn.ModuleList(peers)
        self.weights = weights

    @property
    def eval_model(self) -> nn.Module:
        return self.peers[0]

    @property
    def eval_models(self) -> dict[str, nn.Module]:
        return {f"peer{i + 1}": p for i, p in enumerate(self.peers)}

    def forward(self, batch: Batch, progress: Progress) -> StepOutput:
        w = self.weights
        logits = [peer(batch.x) for peer in self.peers]
        targets = [z.detach() for z in logits]
        loss = logits[0].new_zeros(())
        terms: dict[str, torch.Tensor] = {}
        for i, z in enumerate(logits):
            ce = F.cross_entropy(z, batch.y)
            kl = torch.stack([kd_loss(z, t, w.T) for j, t in enumerate(targets) if j != i]).mean()
            terms[f"ce_peer{i + 1}"], terms[f"kl_peer{i + 1}"] = ce, kl
            loss = loss + w.ce_weight * ce + w.alpha * kl
        return StepOutput(loss, logits[0], terms)


def peer_keys(cfg) -> list[str]:
    keys = list(cfg.scheme.peers)
    for key in keys:
        if key not in PEER_KEYS:
            raise KdrunError(f"scheme.peers contains '{key}'; each peer names a model node, valid: "
                             f"{', '.join(PEER_KEYS)}")
    if len(keys) < 2:
        raise KdrunError(f"scheme.peers={keys} needs at least two peers, e.g. [student, student]")
    return keys


def mutual(ctx: SchemeContext) -> Iterator[Stage]:
    """A label-only baseline (shared with other runs) and the peers trained together."""
    wanted = needed(ctx.cfg.stages, {})
    if "baseline" in wanted:
        yield ctx.supervised_stage("baseline", "baseline", "student", ctx.model("student"))
    if "mutual" in wanted:
        keys = peer_keys(ctx.cfg)
        # peer i starts from seed + i: the first student peer has the baseline's initial weights
        peers = [ctx.model(key, seed_offset=i) for i, key in enumerate(keys)]
        task = MutualTask(peers, loss_weights(ctx.cfg))
        arch = "+".join(ctx.cfg[key].arch for key in keys)
        stage = Stage("mutual", "mutual", arch, "dml", task, ctx.epochs(ctx.cfg.trainer.epochs),
                      optim_settings(ctx.cfg.trainer))
        stage.info["peers"] = {f"peer{i + 1}": ctx.cfg[key].arch for i, key in enumerate(keys)}
        yield stage
