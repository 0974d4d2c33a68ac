"""SymphonyNet's decoder-only causal linear transformer (spec §4), in plain PyTorch.

Input rows ``(B, T, 6)`` = ``[evt, dur, trk, ins, rel, mea]`` (long). Top to bottom:

    summed embeddings   E_evt[evt] + m·E_dur[dur] + m·E_trk[trk] + E_rel[rel] + E_mea[mea],  m = 1[dur ≠ PAD]
                        (the instrument column is never read: it is only a target)
    dropout
    n_layers × post-LN block:  x = LN(x + Drop(CausalLinearAttention(x)));  x = LN(x + Drop(FFN(x)))
    LayerNorm (the encoder's final norm), LayerNorm(eps 1e-6)
    four bias-free heads    event, duration, track, instrument logits

Causal linear attention (Katharopoulos et al. 2020) with feature map φ(x) = elu(x) + 1::

    out_i = φ(q_i) · Σ_{j≤i} φ(k_j)ᵀ v_j  /  (φ(q_i) · Σ_{j≤i} φ(k_j) + eps)

It has two exact forms sharing the weights:

* parallel (training, priming): the sequence is cut into chunks of ``chunk_size`` steps; inside a
  chunk the causal sum is a small masked C×C product, across chunks it is a cumulative sum of
  per-chunk ``φ(k)ᵀv`` matrices. Memory is O(T·C + T/C·D²) per head, never T×T.
* recurrent (generation): the two running sums ``S = Σ φ(k)ᵀv`` (D×D per head) and ``z = Σ φ(k)``
  are the whole state: constant memory and constant time per step, whatever the length.

The attention core always runs in float32 (cumulative sums in half precision drift).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from orchestrion.symbolic.mmr_vocab import PAD
from orchestrion.symphony.config import FIELDS, SymphonyConfig

# Columns of an input row.
EVT, DUR, TRK, INS, REL, MEA = range(6)
ROW_WIDTH = 6


def feature_map(x: torch.Tensor) -> torch.Tensor:
    """φ(x) = elu(x) + 1 > 0, elementwise."""
    return F.elu(x) + 1.0


def causal_linear_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, chunk_size: int, eps: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Chunked parallel causal linear attention on feature-mapped queries and keys.

    Args:
        q, k: (B, H, T, D) φ-mapped queries and keys (positive).
        v: (B, H, T, E) values.
        chunk_size: steps per chunk C (only speed and memory depend on it).
        eps: added to the normaliser.

    Returns:
        out (B, H, T, E), and the sums after the last step, ``kv`` (B, H, D, E) and ``k_sum`` (B, H, D),
        which are the recurrent state that continues this sequence.
    """
    batch, heads, length, d = q.shape
    e = v.shape[-1]
    c = min(chunk_size, length)
    pad = (-length) % c
    if pad:  # zero keys and values at the end add nothing to any sum
        q, k, v = (F.pad(x, (0, 0, 0, pad)) for x in (q, k, v))
    n = (length + pad) // c
    q = q.reshape(batch, heads, n, c, d)
    k = k.reshape(batch, heads, n, c, d)
    v = v.reshape(batch, heads, n, c, e)

    kv_chunk = torch.einsum("bhncd,bhnce->bhnde", k, v)  # (B, H, N, D, E)
    kv_total = kv_chunk.cumsum(dim=2)
    kv_before = torch.cat([torch.zeros_like(kv_total[:, :, :1]), kv_total[:, :, :-1]], dim=2)
    k_chunk = k.sum(dim=3)  # (B, H, N, D)
    k_total = k_chunk.cumsum(dim=2)
    k_before = torch.cat([torch.zeros_like(k_total[:, :, :1]), k_total[:, :, :-1]], dim=2)

    causal = torch.ones(c, c, dtype=torch.bool, device=q.device).tril()
    scores = torch.einsum("bhncd,bhnmd->bhncm", q, k).masked_fill(~causal, 0.0)  # (B, H, N, C, C)
    numerator = torch.einsum("bhncd,bhnde->bhnce", q, kv_before) + scores @ v  # (B, H, N, C, E)
    denominator = torch.einsum("bhncd,bhnd->bhnc", q, k_before) + scores.sum(dim=-1)  # (B, H, N, C)
    out = numerator / (denominator.unsqueeze(-1) + eps)
    out = out.reshape(batch, heads, n * c, e)[:, :, :length]
    return out, kv_total[:, :, -1], k_total[:, :, -1]


@dataclass
class SymphonyState:
    """Recurrent state of the whole model after some steps; its size does not grow with them.

    ``kv``: (n_layers, B, H, D, D) running Σ φ(k)ᵀv; ``k_sum``: (n_layers, B, H, D) running Σ φ(k).
    """

    kv: torch.Tensor
    k_sum: torch.Tensor

    def clone(self) -> SymphonyState:
        return SymphonyState(self.kv.clone(), self.k_sum.clone())

    def select(self, index: torch.Tensor) -> SymphonyState:
        """The states of the batch entries ``index`` (B',) long, e.g. to drop or repeat sequences."""
        return SymphonyState(self.kv.index_select(1, index), self.k_sum.index_select(1, index))


class CausalLinearAttention(nn.Module):
    """Multi-head causal linear attention with query/key/value/output projections."""

    def __init__(self, config: SymphonyConfig):
        super().__init__()
        self.n_heads, self.head_dim = config.n_heads, config.head_dim
        self.chunk_size, self.eps = config.chunk_size, config.attention_eps
        self.query = nn.Linear(config.d_model, config.d_model)
        self.key = nn.Linear(config.d_model, config.d_model)
        self.value = nn.Linear(config.d_model, config.d_model)
        self.out = nn.Linear(config.d_model, config.d_model)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        *lead, _ = x.shape  # (..., d_model) -> (..., H, D)
        return x.reshape(*lead, self.n_heads, self.head_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, T, d_model) → (B, T, d_model), plus the final (kv, k_sum) state of this layer."""
        batch, length, _ = x.shape
        q = feature_map(self._heads(self.query(x)).float()).transpose(1, 2)  # (B, H, T, D)
        k = feature_map(self._heads(self.key(x)).float()).transpose(1, 2)
        v = self._heads(self.value(x)).float().transpose(1, 2)
        with torch.autocast(device_type=x.device.type, enabled=False):
            y, kv, k_sum = causal_linear_attention(q, k, v, self.chunk_size, self.eps)
        y = y.transpose(1, 2).reshape(batch, length, -1).to(x.dtype)  # (B, T, d_model)
        return self.out(y), kv, k_sum

    def step(
        self, x: torch.Tensor, kv: torch.Tensor, k_sum: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step: x (B, d_model), kv (B, H, D, D), k_sum (B, H, D) → (y (B, d_model), kv, k_sum)."""
        q = feature_map(self._heads(self.query(x)).float())  # (B, H, D)
        k = feature_map(self._heads(self.key(x)).float())
        v = self._heads(self.value(x)).float()
        kv = kv + k.unsqueeze(-1) * v.unsqueeze(-2)
        k_sum = k_sum + k
        numerator = torch.einsum("bhd,bhde->bhe", q, kv)
        denominator = (q * k_sum).sum(-1, keepdim=True)
        y = (numerator / (denominator + self.eps)).reshape(x.shape[0], -1).to(x.dtype)
        return self.out(y), kv, k_sum


class FeedForward(nn.Module):
    def __init__(self, config: SymphonyConfig):
        super().__init__()
        self.up = nn.Linear(config.d_model, config.d_ff)
        self.down = nn.Linear(config.d_ff, config.d_model)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.dropout(F.gelu(self.up(x))))


class Block(nn.Module):
    """Post-LN transformer block (fast-transformers' TransformerEncoderLayer)."""

    def __init__(self, config: SymphonyConfig):
        super().__init__()
        self.attention = CausalLinearAttention(config)
        self.norm1 = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.feed_forward = FeedForward(config)
        self.norm2 = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        attended, kv, k_sum = self.attention(x)
        x = self.norm1(x + self.dropout(attended))
        return self.norm2(x + self.dropout(self.feed_forward(x))), kv, k_sum

    def step(
        self, x: torch.Tensor, kv: torch.Tensor, k_sum: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        attended, kv, k_sum = self.attention.step(x, kv, k_sum)
        x = self.norm1(x + self.dropout(attended))
        return self.norm2(x + self.dropout(self.feed_forward(x))), kv, k_sum


class RowEmbedding(nn.Module):
    """Summed field and position embeddings of input rows (§4.1); the instrument column is ignored."""

    def __init__(self, config: SymphonyConfig):
        super().__init__()
        d = config.d_model
        self.event = nn.Embedding(config.event_vocab_size, d, padding_idx=PAD)
        self.duration = nn.Embedding(config.duration_vocab_size, d, padding_idx=PAD)
        self.track = nn.Embedding(config.track_vocab_size, d, padding_idx=PAD)
        self.rel = nn.Embedding(config.max_rel_pos + 1, d, padding_idx=0)  # note order in a track segment
        self.mea = nn.Embedding(config.max_mea_pos + 1, d, padding_idx=0)  # measure position in the window
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        """rows (..., 6) long → (..., d_model)."""
        is_note = (rows[..., DUR] != PAD).unsqueeze(-1).to(self.event.weight.dtype)  # metadata: event + positions
        x = (
            self.event(rows[..., EVT])
            + is_note * (self.duration(rows[..., DUR]) + self.track(rows[..., TRK]))
            + self.rel(rows[..., REL])
            + self.mea(rows[..., MEA])
        )
        return self.dropout(x)


class SymphonyModel(nn.Module):
    """The SymphonyNet language model: rows (B, T, 6) → four logit tensors (B, T, V_field)."""

    def __init__(self, config: SymphonyConfig):
        super().__init__()
        self.config = config
        self.embedding = RowEmbedding(config)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.encoder_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.output_norm = nn.LayerNorm(config.d_model, eps=config.output_norm_eps)
        self.heads = nn.ModuleDict(
            {field: nn.Linear(config.d_model, size, bias=False) for field, size in config.vocab_sizes().items()}
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """§4.2: Linear/Embedding weights ~ N(0, d^-1/2), biases 0, LayerNorm (1, 0), ignored rows 0."""
        std = self.config.d_model**-0.5
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=std)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
            if isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            if isinstance(module, nn.Embedding) and module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()

    def _logits(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.output_norm(self.encoder_norm(h))
        return {field: self.heads[field](h) for field in FIELDS}

    def forward(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        """Teacher-forced logits.

        Args:
            rows: (B, T, 6) long, columns [evt, dur, trk, ins, rel, mea]; ``ins`` is never read.

        Returns:
            ``{"event": (B, T, V_evt), "duration": (B, T, 36), "track": (B, T, 44), "instrument": (B, T, 133)}``;
            position t predicts row t + 1.
        """
        return self.prime(rows)[0]

    def prime(self, rows: torch.Tensor) -> tuple[dict[str, torch.Tensor], SymphonyState]:
        """Parallel forward that also returns the recurrent state after the last row.

        ``step`` continues from that state exactly as if every row had been fed one by one (all
        sequences of the batch must then end at the same, last, position).
        """
        h = self.embedding(rows)  # (B, T, d_model)
        kvs, k_sums = [], []
        for block in self.blocks:
            h, kv, k_sum = block(h)
            kvs.append(kv)
            k_sums.append(k_sum)
        return self._logits(h), SymphonyState(torch.stack(kvs), torch.stack(k_sums))

    def initial_state(self, batch_size: int) -> SymphonyState:
        """Empty state for ``batch_size`` sequences (float32 on the model's device)."""
        c = self.config
        device = self.heads["event"].weight.device
        return SymphonyState(
            torch.zeros(c.n_layers, batch_size, c.n_heads, c.head_dim, c.head_dim, device=device),
            torch.zeros(c.n_layers, batch_size, c.n_heads, c.head_dim, device=device),
        )

    def step(self, rows: torch.Tensor, state: SymphonyState) -> tuple[dict[str, torch.Tensor], SymphonyState]:
        """Recurrent form: one row per sequence.

        Args:
            rows: (B, 6) long, the next input row of each sequence.
            state: from :meth:`initial_state`, :meth:`prime` or a previous ``step`` (not modified).

        Returns:
            logits ``{field: (B, V_field)}`` (equal to ``forward``'s at this position) and the new state.
        """
        h = self.embedding(rows)  # (B, d_model)
        kvs, k_sums = [], []
        for layer, block in enumerate(self.blocks):
            h, kv, k_sum = block.step(h, state.kv[layer], state.k_sum[layer])
            kvs.append(kv)
            k_sums.append(k_sum)
        return self._logits(h), SymphonyState(torch.stack(kvs), torch.stack(k_sums))

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
