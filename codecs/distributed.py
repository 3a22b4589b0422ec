"""The process-group helper both trainers share (the hyperprior zoo and the ROI codec).

A no-op outside torchrun. Under torchrun every rank has already chosen ``cuda:LOCAL_RANK``
(:func:`lossarena.codecs.device.resolve_device`); :meth:`Dist.start` creates the group unless one
exists (a zoo running every model in one group), and only a group created here is destroyed.
"""

from __future__ import annotations

import os

import torch


class Dist:
    """Process-group bookkeeping (a no-op when not launched by torchrun).

    A group created here is destroyed by :meth:`stop`; one that already exists (a zoo running every
    model in one torchrun group) is left alone.
    """

    def __init__(self):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.enabled = self.world > 1
        self.owned = False

    def start(self, device: torch.device):
        if not self.enabled:
            return
        import torch.distributed as dist

        if device.type == "cuda":
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
            self.owned = True

    def average_grads(self, params) -> None:
        """All-reduce and average the gradients of ``params`` over the ranks (missing ones count as 0)."""
        if not self.enabled:
            return
        import torch.distributed as dist

        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            dist.all_reduce(p.grad)
            p.grad.div_(self.world)

    def stop(self):
        if self.owned:
            import torch.distributed as dist

            dist.barrier()
            dist.destroy_process_group()
            self.owned = False

    def all_gather(self, obj):
        if not self.enabled:
            return [obj]
        import torch.distributed as dist

        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj):
        if not self.enabled:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self):
        if self.enabled:
            import torch.distributed as dist

            dist.barrier()
