"""LatentChunkDataset: crops of a latent-chunk folder for the latent-GAN trainer (Interface 1)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from latent_support import TEST_DIGEST, write_latent_chunks

from orchestrion.errors import DataError
from orchestrion.musika.latent_data import LatentChunkDataset
from orchestrion.training import SampleKey


def _find_offset(chunk: torch.Tensor, crop: torch.Tensor) -> list[int]:
    """Every offset at which ``crop`` (C, n) equals a slice of ``chunk`` (C, F)."""
    n = crop.shape[-1]
    return [o for o in range(chunk.shape[-1] - n + 1) if torch.equal(chunk[:, o : o + n], crop)]


@pytest.mark.parametrize("cache_bytes", [1 << 30, 0], ids=["in-memory", "from-disk"])
def test_crops_have_the_right_shape_lie_inside_their_chunk_and_share_the_offset(tmp_path: Path, cache_bytes: int):
    written = write_latent_chunks(tmp_path, frames=(64, 64, 48), latent_dim=8)
    dataset = LatentChunkDataset(tmp_path, crop_frames=32, autoencoder_digest=TEST_DIGEST, cache_bytes=cache_bytes)
    assert (dataset.cached is None) == (cache_bytes == 0)
    assert len(dataset) == 2 + 2 + 1  # 64 // 32 + 64 // 32 + 48 // 32
    assert [dataset.chunk_of(i) for i in range(len(dataset))] == [0, 0, 1, 1, 2]
    offsets_seen = set()
    for seed in range(40):
        key = SampleKey(seed % len(dataset), seed)
        item = dataset[key]
        assert item["latents"].shape == (16, 32) and item["latents"].dtype == torch.float32
        assert item["conditions"].shape == (2, 32) and item["conditions"].dtype == torch.float32
        chunk, offset = dataset.crop_offset(key)
        source = written[chunk]
        assert 0 <= offset <= source["latents"].shape[1] - 32
        assert offset in _find_offset(source["latents"], item["latents"])
        # conditions in the requested order, cropped with the latents' offset
        assert torch.equal(item["conditions"][0], source["note_density"][offset : offset + 32])
        assert torch.equal(item["conditions"][1], source["tempo"][offset : offset + 32])
        assert item["conditions"].min() >= 0 and item["conditions"].max() <= 1
        offsets_seen.add((chunk, offset))
    assert len(offsets_seen) > 10  # the seed really moves the crop


def test_same_sample_key_gives_the_same_crop_and_other_seeds_differ(tmp_path: Path):
    write_latent_chunks(tmp_path, frames=(128,))
    dataset = LatentChunkDataset(tmp_path, crop_frames=16)
    again = LatentChunkDataset(tmp_path, crop_frames=16, cache_bytes=0)
    key = SampleKey(3, 1234)
    assert torch.equal(dataset[key]["latents"], dataset[key]["latents"])
    assert torch.equal(dataset[key]["latents"], again[key]["latents"])
    others = {dataset.crop_offset(SampleKey(3, seed))[1] for seed in range(20)}
    assert len(others) > 5


def test_condition_selection_and_order(tmp_path: Path):
    written = write_latent_chunks(tmp_path, frames=(40,))
    only_tempo = LatentChunkDataset(tmp_path, crop_frames=40, conditions=("tempo",))
    assert torch.equal(only_tempo[SampleKey(0, 5)]["conditions"], written[0]["tempo"][None])
    unconditional = LatentChunkDataset(tmp_path, crop_frames=40, conditions=())
    item = unconditional[SampleKey(0, 5)]
    assert item["conditions"].shape == (0, 40)
    assert torch.equal(item["latents"], written[0]["latents"])
    with pytest.raises(DataError, match=re.escape("conditions ['loudness'] requested")):
        LatentChunkDataset(tmp_path, crop_frames=8, conditions=("loudness",))


def test_a_folder_made_by_another_autoencoder_is_refused(tmp_path: Path):
    write_latent_chunks(tmp_path, digest="aaaaaaaaaaaaaaaa")
    with pytest.raises(DataError) as error:
        LatentChunkDataset(tmp_path, crop_frames=16, autoencoder_digest="bbbbbbbbbbbbbbbb")
    message = str(error.value)
    assert "made by autoencoder aaaaaaaaaaaaaaaa" in message and "uses autoencoder bbbbbbbbbbbbbbbb" in message


def test_bad_folders_give_one_clear_error(tmp_path: Path):
    with pytest.raises(DataError, match=re.escape("latent chunk folder not found")):
        LatentChunkDataset(tmp_path / "missing", crop_frames=16)
    tmp_path.joinpath("empty").mkdir()
    with pytest.raises(DataError, match=re.escape("no manifest.json; not a finished latent-chunk folder")):
        LatentChunkDataset(tmp_path / "empty", crop_frames=16)

    folder = tmp_path / "chunks"
    write_latent_chunks(folder, frames=(64, 48))
    too_long = "crops of 50 frames do not fit chunk 000001.safetensors (48 frames)"
    with pytest.raises(DataError, match=re.escape(too_long)):
        LatentChunkDataset(folder, crop_frames=50)

    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "version": 7}))
    with pytest.raises(DataError, match=re.escape("version 7 is not supported")):
        LatentChunkDataset(folder, crop_frames=16)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (folder / "000001.safetensors").unlink()
    with pytest.raises(DataError, match=re.escape("000001.safetensors: chunk listed in the manifest is missing")):
        LatentChunkDataset(folder, crop_frames=16)


def test_a_chunk_whose_tensors_do_not_match_the_manifest_is_named(tmp_path: Path):
    write_latent_chunks(tmp_path, frames=(64, 64))
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["chunks"][1]["frames"] = 60
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    mismatch = "000001.safetensors: tensor 'latents' is missing or not shaped (16, 60)"
    with pytest.raises(DataError, match=re.escape(mismatch)):
        LatentChunkDataset(tmp_path, crop_frames=16)
    (tmp_path / "000000.safetensors").write_bytes(b"not a safetensors file")
    lazy = LatentChunkDataset(tmp_path, crop_frames=16, cache_bytes=0)
    with pytest.raises(DataError, match=re.escape("000000.safetensors: not a readable latent chunk")):
        lazy[SampleKey(0, 0)]


def test_trainer_dataloader_batches_it(tmp_path: Path):
    from torch.utils.data import DataLoader

    write_latent_chunks(tmp_path, frames=(64, 64, 64))
    dataset = LatentChunkDataset(tmp_path, crop_frames=32)
    batch = next(iter(DataLoader(dataset, batch_sampler=[[SampleKey(i, i) for i in range(4)]])))
    assert batch["latents"].shape == (4, 16, 32) and batch["conditions"].shape == (4, 2, 32)
