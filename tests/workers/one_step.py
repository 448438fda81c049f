"""One training step, in one process or under torchrun, saving what it computed (rank 0).

    python tests/workers/one_step.py OUT.pt [SETTINGS_JSON]
    python -m torch.distributed.run --standalone --nproc-per-node 2 tests/workers/one_step.py OUT.pt

Saves the gradients of G and D that the step left, the step's statistics and the weights after
it, so a test can compare a step on 1 process with the same step on 2.
"""

import json
import sys

import torch

from ganforge.data import BatchSampler, load_data
from ganforge.gan.config import TrainConfig
from ganforge.gan.distributed import join, leave
from ganforge.gan.run import resolve
from ganforge.gan.trainer import GANTrainer

out = sys.argv[1]
settings = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
cfg = TrainConfig(**{"size": 16, "batch_size": 8, "g_width": 8, "d_width": 8, "seed": 3, **settings})
data = load_data(cfg.data, cfg.size)
cfg, model_cfg = resolve(cfg, data)
processes = join(60)
trainer = GANTrainer(cfg, model_cfg, torch.device("cpu"), processes)
batches = BatchSampler(data, cfg.batch_size, cfg.seed, cfg.flip)
stats = trainer.step(batches.batch(0), 0)
if processes.is_main:
    torch.save({"g_grad": {k: p.grad.clone() for k, p in trainer.G.named_parameters() if p.grad is not None},
                "d_grad": {k: p.grad.clone() for k, p in trainer.D.named_parameters() if p.grad is not None},
                "stats": [stats.loss_d, stats.loss_g, stats.d_real, stats.d_fake],
                "state": trainer.state_dict(), "augment_p": trainer.augment_p}, out)
# The trainer's DistributedDataParallel wrappers hold the process group: kept until the interpreter
# shuts down, gloo's destructor runs then and now and then aborts the process (2 runs in about 140 here).
del trainer
leave(processes)
