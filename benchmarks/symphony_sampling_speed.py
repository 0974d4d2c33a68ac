"""SymphonyNet sampling speed: recurrent causal linear attention vs a softmax transformer with a KV cache.

Both models have the full reference size (d 512, 16 heads, 12 post-LN layers, FFN 2048, the four
heads of the MMR vocabulary) with random weights; speed does not depend on the values. For every
context length L the model is put in the state it would have after L tokens, then N single-token
steps are timed (batch 1, as generation runs; ``--batch`` samples several sequences at once):

  linear (ours)   ``SymphonyModel.step``: constant-size state (Σ φ(k)ᵀv, Σ φ(k) per layer and head)
  softmax + KV    the same blocks with softmax attention over a preallocated KV cache of L + N
                  positions, one ``torch.nn.functional.scaled_dot_product_attention`` call per layer

The states are filled with random values instead of running a prefill over L tokens (a 16k-token
softmax prefill alone takes minutes on two cores); a step's cost depends on the state's shape only.

The "ceiling" column is the speed-up a purely memory-bound step would show: bytes the softmax step
must read (every weight once per step + the whole KV cache of every sequence) over bytes ours reads
(every weight once + the constant state). At batch 1 the weights dominate both, which caps the ratio
at 4k near 2.3x however good the code; batching multiplies the KV traffic but not the weights'.

Usage:  python benchmarks/symphony_sampling_speed.py [--contexts 512 2048 4096 8192 16384] [--steps 32]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from orchestrion.symphony.config import SymphonyConfig
from orchestrion.symphony.model import SymphonyModel, SymphonyState
from orchestrion.system import cpu_description


class SoftmaxBlock(nn.Module):
    """Post-LN block like SymphonyNet's, with softmax attention over a KV cache."""

    def __init__(self, c: SymphonyConfig) -> None:
        super().__init__()
        self.heads, self.head_dim = c.n_heads, c.head_dim
        self.query, self.key, self.value, self.out = (nn.Linear(c.d_model, c.d_model) for _ in range(4))
        self.up, self.down = nn.Linear(c.d_model, c.d_ff), nn.Linear(c.d_ff, c.d_model)
        self.norm1, self.norm2 = nn.LayerNorm(c.d_model), nn.LayerNorm(c.d_model)

    def step(self, x: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, length: int) -> torch.Tensor:
        """x (B, d); keys/values (B, H, capacity, D) with ``length`` filled; writes position ``length``."""
        b = x.shape[0]
        q = self.query(x).view(b, self.heads, 1, self.head_dim)
        keys[:, :, length] = self.key(x).view(b, self.heads, self.head_dim)
        values[:, :, length] = self.value(x).view(b, self.heads, self.head_dim)
        y = F.scaled_dot_product_attention(q, keys[:, :, : length + 1], values[:, :, : length + 1])
        x = self.norm1(x + self.out(y.reshape(b, -1)))
        return self.norm2(x + self.down(F.gelu(self.up(x))))


class SoftmaxLM(nn.Module):
    """The softmax baseline: embeddings of the six row columns, softmax blocks, final norms, four heads."""

    def __init__(self, c: SymphonyConfig) -> None:
        super().__init__()
        self.embeddings = nn.ModuleList(nn.Embedding(n, c.d_model) for n in (
            c.event_vocab_size, c.duration_vocab_size, c.track_vocab_size, c.max_rel_pos + 1, c.max_mea_pos + 1))
        self.blocks = nn.ModuleList(SoftmaxBlock(c) for _ in range(c.n_layers))
        self.norm = nn.LayerNorm(c.d_model)
        self.heads = nn.ModuleList(nn.Linear(c.d_model, n, bias=False) for n in c.vocab_sizes().values())

    def step(self, rows: torch.Tensor, cache: list[tuple[torch.Tensor, torch.Tensor]], length: int) -> list:
        x = sum(emb(rows[:, i]) for emb, i in zip(self.embeddings, (0, 1, 2, 4, 5), strict=True))
        for block, (keys, values) in zip(self.blocks, cache, strict=True):
            x = block.step(x, keys, values, length)
        x = self.norm(x)
        return [head(x) for head in self.heads]


def random_rows(config: SymphonyConfig, batch: int, generator: torch.Generator) -> torch.Tensor:
    """(batch, 6) note rows with in-range ids."""
    cols = [config.event_vocab_size, config.duration_vocab_size, config.track_vocab_size,
            config.instrument_vocab_size, config.max_rel_pos + 1, config.max_mea_pos + 1]
    return torch.stack([torch.randint(4, c, (batch,), generator=generator) for c in cols], dim=-1)


@torch.inference_mode()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contexts", type=int, nargs="+", default=[512, 2048, 4096, 8192, 16384])
    parser.add_argument("--steps", type=int, default=32, help="timed steps per context")
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--batch", type=int, default=1, help="sequences sampled together (per-token times shown)")
    parser.add_argument("--merges", type=int, default=700, help="Music BPE merges (event vocabulary 527 + merges)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)

    config = SymphonyConfig(event_vocab_size=527 + args.merges)
    linear = SymphonyModel(config).eval()
    softmax = SoftmaxLM(config).eval()
    print(f"CPU: {cpu_description()[0]}, {os.cpu_count()} cores, torch {torch.__version__} with {args.threads} threads")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    n_softmax = sum(p.numel() for p in softmax.parameters())
    print(f"full config: d {config.d_model}, {config.n_heads} heads, {config.n_layers} layers, FFN {config.d_ff}; "
          f"linear {linear.n_parameters() / 1e6:.1f} M params, softmax {n_softmax / 1e6:.1f} M")
    print(f"{args.steps} timed steps (median) after {args.warmup} warm-up steps, batch {args.batch} "
          "(ms per token = per step / batch)\n")
    print(f"{'context':>8} | {'linear ms/tok':>13} {'tok/s':>7} | {'softmax+KV ms/tok':>17} {'tok/s':>7} | "
          f"{'speed-up':>8} | {'ceiling':>7} | {'KV cache MiB':>12} | {'linear state MiB':>16}")
    # Round-robin over contexts and models, one step each per round: load from other processes on a
    # shared machine then hits every column alike instead of whichever context ran during a busy spell.
    batch = args.batch
    linear_states, caches = {}, {}
    for context in args.contexts:
        state = linear.initial_state(batch)
        linear_states[context] = SymphonyState(torch.rand(state.kv.shape, generator=generator),
                                               torch.rand(state.k_sum.shape, generator=generator) * context)
        shape = (batch, config.n_heads, context + args.warmup + args.steps, config.head_dim)
        caches[context] = [(torch.randn(shape, generator=generator), torch.randn(shape, generator=generator))
                           for _ in range(config.n_layers)]
    times = {(model, context): [] for model in ("linear", "softmax") for context in args.contexts}
    for i in range(args.warmup + args.steps):
        rows = random_rows(config, batch, generator)
        for context in args.contexts:
            start = time.perf_counter()
            _, linear_states[context] = linear.step(rows, linear_states[context])
            middle = time.perf_counter()
            softmax.step(rows, caches[context], context + i)
            end = time.perf_counter()
            if i >= args.warmup:
                times["linear", context].append(middle - start)
                times["softmax", context].append(end - middle)
    state_floats = sum(t.numel() for t in (linear_states[args.contexts[0]].kv, linear_states[args.contexts[0]].k_sum))
    # weights one step reads: every block and output head (embeddings: one row per sequence, negligible)
    step_weights = sum(p.numel() for name, p in linear.named_parameters() if not name.startswith("embedding"))
    for context in args.contexts:
        lin = statistics.median(times["linear", context]) / batch
        soft = statistics.median(times["softmax", context]) / batch
        cache_mib = sum(k.numel() + v.numel() for k, v in caches[context]) * 4 / 2**20
        kv_read = 2 * config.n_layers * batch * context * config.d_model  # floats of keys and values read
        ceiling = (step_weights + kv_read) / (step_weights + state_floats)
        print(f"{context:>8} | {lin * 1e3:>13.2f} {1 / lin:>7.1f} | {soft * 1e3:>17.2f} {1 / soft:>7.1f} | "
              f"{soft / lin:>7.2f}x | {ceiling:>6.2f}x | {cache_mib:>12.0f} | {state_floats * 4 / 2**20:>16.2f}")
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
