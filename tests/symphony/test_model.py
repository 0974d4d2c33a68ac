"""The linear transformer (spec §4, acceptance 7): causality, instrument blindness, recurrent == parallel."""

from __future__ import annotations

import pytest
import torch

from orchestrion.config import config_from_dict, config_to_dict
from orchestrion.errors import ConfigError
from orchestrion.symbolic.mmr_vocab import PAD
from orchestrion.symphony.config import SymphonyConfig, SymphonyTrainingConfig
from orchestrion.symphony.model import INS, SymphonyModel, causal_linear_attention


def random_rows(config: SymphonyConfig, batch: int, length: int, seed: int = 0) -> torch.Tensor:
    """Random rows (B, T, 6) inside every table, a third of them metadata steps (PAD duration/track)."""
    g = torch.Generator().manual_seed(seed)
    columns = [
        torch.randint(4, config.event_vocab_size, (batch, length), generator=g),
        torch.randint(4, config.duration_vocab_size, (batch, length), generator=g),
        torch.randint(4, config.track_vocab_size, (batch, length), generator=g),
        torch.randint(4, config.instrument_vocab_size, (batch, length), generator=g),
        torch.randint(0, config.max_rel_pos + 1, (batch, length), generator=g),
        torch.randint(0, config.max_mea_pos + 1, (batch, length), generator=g),
    ]
    rows = torch.stack(columns, dim=-1)
    meta = torch.rand(batch, length, generator=g) < 1 / 3
    rows[..., 1][meta] = PAD
    rows[..., 2][meta] = PAD
    rows[..., 3][meta] = PAD
    return rows


@pytest.fixture(scope="module")
def model() -> SymphonyModel:
    torch.manual_seed(0)
    return SymphonyModel(SymphonyConfig.preset("debug", chunk_size=8)).eval()


def test_full_preset_has_reference_size():
    # §4.2: ≈ 39.4 M with the released 1125-event vocabulary
    n = SymphonyModel(SymphonyConfig(event_vocab_size=1125, max_rel_pos=70, max_mea_pos=533)).n_parameters()
    assert 39.0e6 < n < 39.8e6


def test_output_shapes(model):
    rows = random_rows(model.config, 3, 21)
    out = model(rows)
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        field: (3, 21, size) for field, size in model.config.vocab_sizes().items()
    }


def test_output_at_i_ignores_later_rows(model):
    rows = random_rows(model.config, 2, 40)
    changed = rows.clone()
    changed[:, 23:] = random_rows(model.config, 2, 17, seed=1)
    with torch.no_grad():
        a, b = model(rows), model(changed)
    for field in a:
        torch.testing.assert_close(a[field][:, :23], b[field][:, :23], rtol=0, atol=1e-6)
        assert not torch.allclose(a[field][:, 23:], b[field][:, 23:])


def test_instrument_column_never_changes_any_output(model):
    rows = random_rows(model.config, 2, 30)
    changed = rows.clone()
    changed[..., INS] = torch.randint(0, model.config.instrument_vocab_size, changed[..., INS].shape)
    with torch.no_grad():
        a, b = model(rows), model(changed)
    for field in a:
        assert torch.equal(a[field], b[field])


@pytest.mark.parametrize("length", [1, 8, 37])
def test_recurrent_equals_parallel(model, length):
    rows = random_rows(model.config, 2, length, seed=length)
    with torch.no_grad():
        parallel = model(rows)
        state = model.initial_state(2)
        for t in range(length):
            logits, state = model.step(rows[:, t], state)
            for field in logits:
                torch.testing.assert_close(logits[field], parallel[field][:, t], rtol=0, atol=1e-4)


def test_prime_then_step_continues_the_sequence(model):
    rows = random_rows(model.config, 2, 30)
    with torch.no_grad():
        full = model(rows)
        _, state = model.prime(rows[:, :19])
        size = state.kv.numel() + state.k_sum.numel()
        for t in range(19, 30):
            logits, state = model.step(rows[:, t], state)
            torch.testing.assert_close(logits["event"], full["event"][:, t], rtol=0, atol=1e-4)
    assert state.kv.numel() + state.k_sum.numel() == size, "state size must not grow with the sequence"


@pytest.mark.parametrize("chunk", [1, 5, 64])
def test_chunked_attention_equals_quadratic_form(chunk):
    g = torch.Generator().manual_seed(0)
    q, k = (torch.nn.functional.elu(torch.randn(2, 3, 29, 4, generator=g)) + 1 for _ in range(2))
    v = torch.randn(2, 3, 29, 5, generator=g)
    out, kv, k_sum = causal_linear_attention(q, k, v, chunk, 1e-6)
    weights = (q @ k.transpose(-1, -2)).tril()
    expected = (weights @ v) / (weights.sum(-1, keepdim=True) + 1e-6)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(kv, k.transpose(-1, -2) @ v, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(k_sum, k.sum(2), rtol=1e-5, atol=1e-5)


def test_ignored_rows_are_zero_and_stay_zero_after_an_update():
    model = SymphonyModel(SymphonyConfig.preset("debug"))
    emb = model.embedding
    rows = random_rows(model.config, 2, 16)
    sum(v.sum() for v in model(rows).values()).backward()
    for table, row in ((emb.event, PAD), (emb.duration, PAD), (emb.track, PAD), (emb.rel, 0), (emb.mea, 0)):
        assert torch.count_nonzero(table.weight[row]) == 0
        assert torch.count_nonzero(table.weight.grad[row]) == 0
    assert all(head.bias is None for head in model.heads.values())


def test_init_std_is_d_to_the_minus_half():
    model = SymphonyModel(SymphonyConfig.preset("small", event_vocab_size=1000))
    std = model.blocks[0].feed_forward.up.weight.std().item()
    assert abs(std - 256**-0.5) < 0.05 * 256**-0.5


def test_full_width_layer_runs_a_4096_step_window():
    # chunked attention: a T×T float matrix per head here would take 1 GiB
    config = SymphonyConfig(n_layers=1, dropout=0.0)
    model = SymphonyModel(config).eval()
    rows = random_rows(config, 1, 4096)
    with torch.no_grad():
        out = model(rows)
    assert out["event"].shape == (1, 4096, config.event_vocab_size)
    assert torch.isfinite(out["event"]).all()


def test_configs_round_trip_and_reject_bad_values():
    config = SymphonyTrainingConfig.preset_config("small")
    assert config_from_dict(SymphonyTrainingConfig, config_to_dict(config)) == config
    with pytest.raises(ConfigError, match="divisible"):
        SymphonyConfig(d_model=100, n_heads=16)
    with pytest.raises(ConfigError, match="unknown SymphonyNet preset"):
        SymphonyConfig.preset("huge")
