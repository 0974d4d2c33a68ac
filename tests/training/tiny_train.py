"""A tiny two-optimizer model trained by the shared Trainer; run as a script by the tests.

    python tiny_train.py RUN_DIR --steps 12 [--resume] [--sleep 0.05] [--accum 1] [--batch 4] [--workers 2]
        [--data-sleep 30]
    torchrun --nproc_per_node=2 tiny_train.py RUN_DIR --steps 6

Prints one line ``WEIGHTS <rank> <sha256 of all weights>`` at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from dataclasses import dataclass

import torch
from torch import nn

from orchestrion.config import register_config
from orchestrion.training import SampleKey, StepContext, Trainer, TrainerConfig


@register_config("tests.tiny")
@dataclass(frozen=True)
class TinyConfig:
    width: int = 16
    dropout: float = 0.1


class TinyData(torch.utils.data.Dataset):
    """Noisy linear regression; the noise comes from the key's seed, as the contract asks.

    ``sleep`` seconds per item stand for slow decoding (a busy data worker).
    """

    def __init__(self, sleep: float = 0.0) -> None:
        self.sleep = sleep

    def __len__(self) -> int:
        return 10

    def __getitem__(self, key: SampleKey):
        if self.sleep:
            time.sleep(self.sleep)
        g = torch.Generator().manual_seed(key.seed)
        x = torch.linspace(-1, 1, 8) * (key.index + 1) / 10 + 0.1 * torch.randn(8, generator=g)
        return x, x.flip(0) * 0.5


def build(config: TinyConfig, optimizer: str = "adam"):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, config.width), nn.Tanh(), nn.Dropout(config.dropout), nn.Linear(config.width, 8))
    critic = nn.Linear(8, 1)
    make = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}[optimizer]
    optimizers = {"net": make(net.parameters(), lr=1e-2), "critic": make(critic.parameters(), lr=1e-2)}
    return {"net": net, "critic": critic}, optimizers


def make_step(sleep: float):
    def step(ctx: StepContext, batch):
        x, y = batch
        with torch.no_grad():
            fake = ctx.raw("net")(x)
        critic_loss = (ctx.module("critic")(fake).squeeze(1) - y.mean(1)).pow(2).mean()
        ctx.optimize("critic", critic_loss)
        out = ctx.module("net")(x)
        net_loss = (out - y).pow(2).mean() + 0.01 * ctx.raw("critic")(out).mean()
        ctx.optimize("net", net_loss)
        if sleep:
            time.sleep(sleep)
        return {"loss": net_loss.detach(), "critic_loss": critic_loss.detach()}

    return step


def weights_digest(modules) -> str:
    digest = hashlib.sha256()
    for name in sorted(modules):
        for key, tensor in sorted(modules[name].state_dict().items()):
            digest.update(f"{name}.{key}".encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--accum", type=int, default=1)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--data-sleep", type=float, default=0.0)
    parser.add_argument("--checkpoint-every", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = TinyConfig(dropout=args.dropout)
    modules, optimizers = build(config)
    trainer = Trainer(
        args.run_dir,
        model_config=config,
        modules=modules,
        optimizers=optimizers,
        step_fn=make_step(args.sleep),
        dataset=TinyData(args.data_sleep),
        config=TrainerConfig(
            max_steps=args.steps,
            batch_size=args.batch,
            grad_accum=args.accum,
            num_workers=args.workers,
            checkpoint_every=args.checkpoint_every,
            keep_last=2,
            log_every=1,
            seed=7,
            progress=False,
        ),
    )
    trainer.fit(resume=args.resume)
    print(f"WEIGHTS {trainer.rank} {weights_digest(modules)}", flush=True)


if __name__ == "__main__":
    main()
