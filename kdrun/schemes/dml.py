"""Deep mutual learning: Zhang, Xiang, Hospedales and Lu, "Deep Mutual Learning", CVPR 2018.

N peers train from scratch together, with no pre-trained teacher. Peer i minimizes

    gamma * CE(z_i, y) + alpha * mean_{j != i} T^2 * KL(softmax(z_j / T) || softmax(z_i / T))

with every other peer's prediction detached, so each term trains only peer i. The paper updates
peers in turn within a step; here one optimizer step updates all peers on the same batch, which
with detached targets gives each peer the same gradient as the paper's rule at the start of the
step (the common implementation). The paper's setting is T=1, alpha=gamma=1 (``scheme=dml``).
Every peer is evaluated each epoch and is a row of the table. The run's method plays no part.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from omegaconf import DictConfig

from kdrun.models.foreign_nodes import model_label
from kdrun.errors import KdrunError
from kdrun.schemes.base import Scheme

if TYPE_CHECKING:
    from kdrun.engine.stage import Stage
    from kdrun.schemes.context import SchemeContext

PEER_KEYS = ("student", "teacher")


class DML(Scheme):
    """A label-only baseline (shared with other runs) and the peers trained together (stage ``dml``)."""

    name = "dml"
    stage_names = ("baseline", "dml")
    primary = "dml"

    def __init__(self, peers: list[str] = ("student", "student")) -> None:
        self.peers = list(peers)  # model nodes by key; peer i is seeded with seed + i

    def check(self, cfg: DictConfig) -> None:
        super().check(cfg)
        for key in self.peers:
            if key not in PEER_KEYS:
                raise KdrunError(f"scheme.peers contains '{key}'; each peer names a model node, valid: "
                                 f"{', '.join(PEER_KEYS)}")
        if len(self.peers) < 2:
            raise KdrunError(f"scheme.peers={self.peers} needs at least two peers, e.g. [student, student]")

    def stages(self, ctx: SchemeContext) -> Iterator[Stage]:
        from kdrun.tasks.build import loss_weights, optim_settings
        from kdrun.engine.stage import Stage
        from kdrun.tasks.distill import DMLTask

        wanted = self.wanted(ctx.cfg)
        if "baseline" in wanted:
            yield ctx.supervised_stage("baseline", "baseline", "student", ctx.model("student"))
        if "dml" in wanted:
            # peer i starts from seed + i: the first student peer has the baseline's initial weights
            peers = [ctx.model(key, seed_offset=i) for i, key in enumerate(self.peers)]
            task = DMLTask(peers, loss_weights(ctx.cfg))
            arch = "+".join(model_label(ctx.cfg[key]) for key in self.peers)
            stage = Stage("dml", "dml", arch, "dml", task, ctx.epochs(ctx.cfg.trainer.epochs),
                          optim_settings(ctx.cfg))
            stage.info["peers"] = {f"peer{i + 1}": model_label(ctx.cfg[key]) for i, key in enumerate(self.peers)}
            yield stage
