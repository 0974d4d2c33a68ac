"""VGGish: front end, weight loading from the torchvggish layout, and FAD with it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from orchestrion.audio.io import save_audio
from orchestrion.errors import CheckpointError
from orchestrion.evaluation.embedders import build_embedder
from orchestrion.evaluation.fad import evaluate_fad
from orchestrion.evaluation.vggish import VGGish, hertz_to_mel, load_vggish, mel_matrix, vggish_log_mel

TORCHVGGISH_SHAPES = {
    "features.0.weight": (64, 1, 3, 3),
    "features.3.weight": (128, 64, 3, 3),
    "features.6.weight": (256, 128, 3, 3),
    "features.8.weight": (256, 256, 3, 3),
    "features.11.weight": (512, 256, 3, 3),
    "features.13.weight": (512, 512, 3, 3),
    "embeddings.0.weight": (4096, 12288),
    "embeddings.2.weight": (4096, 4096),
    "embeddings.4.weight": (128, 4096),
    "pca_eigen_vectors": (128, 128),
    "pca_means": (128,),
}


@pytest.fixture(scope="module")
def random_state() -> dict[str, torch.Tensor]:
    """Random weights in the torchvggish layout, PCA parameters included."""
    torch.manual_seed(0)
    state = {name: value.clone() for name, value in VGGish().state_dict().items()}
    state["pca_eigen_vectors"] = torch.linalg.qr(torch.randn(128, 128)).Q.contiguous()
    state["pca_means"] = torch.randn(128)
    return state


@pytest.fixture(scope="module")
def weight_file(random_state: dict[str, torch.Tensor], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("vggish") / "vggish.safetensors"
    save_file(random_state, str(path))
    return path


def test_model_has_the_torchvggish_tensor_names_and_shapes() -> None:
    shapes = {name: tuple(t.shape) for name, t in VGGish().state_dict().items()}
    assert {name: shapes[name] for name in TORCHVGGISH_SHAPES} == TORCHVGGISH_SHAPES
    assert len(shapes) == 2 * 9 + 2  # 9 layers with weight and bias, 2 PCA tensors


def test_log_mel_front_end_shape_and_peak_band() -> None:
    seconds = np.arange(16000) / 16000
    sine = torch.from_numpy(0.5 * np.sin(2 * np.pi * 1000.0 * seconds)).float()[None]
    log_mel = vggish_log_mel(sine)
    assert log_mel.shape == (1, 98, 64)  # 1 + (16000 − 400) // 160 frames
    centres = np.linspace(hertz_to_mel(125.0), hertz_to_mel(7500.0), 66)[1:-1]
    assert int(log_mel[0].mean(0).argmax()) == int(np.abs(centres - hertz_to_mel(1000.0)).argmin())
    weights = mel_matrix(257, 16000, 64, 125.0, 7500.0)
    assert weights.shape == (257, 64) and (weights >= 0).all() and not weights[0].any()


def test_weights_round_trip_through_safetensors(weight_file: Path, random_state: dict[str, torch.Tensor]) -> None:
    original = VGGish()
    original.load_state_dict(random_state)
    loaded = load_vggish(weight_file, need_pca=True)
    patches = torch.randn(3, 1, 96, 64)
    with torch.inference_mode():
        expected, got = original.eval()(patches), loaded(patches)
    assert got.shape == (3, 128)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    torch.testing.assert_close(loaded.pca_means, random_state["pca_means"])


def test_wrongly_shaped_weights_are_refused_by_name(random_state: dict[str, torch.Tensor], tmp_path: Path) -> None:
    state = dict(random_state)
    state["embeddings.4.weight"] = torch.zeros(64, 4096)
    path = tmp_path / "wrong.safetensors"
    save_file(state, str(path))
    with pytest.raises(CheckpointError) as caught:
        load_vggish(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: not VGGish weights in the torchvggish layout")
    assert "wrong shape: embeddings.4.weight (64, 4096), expected (128, 4096)" in message
    assert "missing" not in message and "unexpected" not in message


def test_missing_unexpected_and_unreadable_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.safetensors"
    save_file({"features.0.weight": torch.zeros(64, 1, 3, 3), "classifier.weight": torch.zeros(10, 128)}, str(path))
    with pytest.raises(CheckpointError, match=r"missing \['features.0.bias', .*unexpected \['classifier.weight'\]"):
        load_vggish(path)
    pickle = tmp_path / "vggish.pth"
    torch.save({"a": torch.zeros(1)}, pickle)
    with pytest.raises(CheckpointError, match=r"vggish\.pth: not a readable safetensors file"):
        load_vggish(pickle)
    with pytest.raises(CheckpointError, match="VGGish weight file not found"):
        load_vggish(tmp_path / "absent.safetensors")


def test_bad_devices_are_refused(weight_file: Path) -> None:
    from orchestrion.errors import OrchestrionError

    with pytest.raises(OrchestrionError, match="--device 'gpu': unknown device; choose auto"):
        build_embedder("vggish", weights=weight_file, device="gpu")
    if not torch.cuda.is_available():
        with pytest.raises(OrchestrionError, match="sees no CUDA GPU; use --device cpu or auto"):
            build_embedder("vggish", weights=weight_file, device="cuda")


def test_pca_postprocess_needs_the_pca_tensors(random_state: dict[str, torch.Tensor], tmp_path: Path) -> None:
    path = tmp_path / "no_pca.safetensors"
    save_file({k: v for k, v in random_state.items() if not k.startswith("pca_")}, str(path))
    assert load_vggish(path, need_pca=False) is not None
    with pytest.raises(CheckpointError, match=r"missing \['pca_eigen_vectors', 'pca_means'\]"):
        load_vggish(path, need_pca=True)


def test_vggish_embedders_and_fad_with_local_weights(weight_file: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    t = np.arange(2 * 22050) / 22050
    reference, generated = tmp_path / "reference", tmp_path / "generated"
    for index, freq in enumerate((220.0, 330.0, 440.0)):
        tone = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)[None]
        save_audio(reference / f"tone{index}.wav", tone, subtype="FLOAT")
        save_audio(generated / f"tone{index}.wav", tone + 0.2 * rng.standard_normal(tone.shape).astype(np.float32))
    excerpts = rng.uniform(-0.5, 0.5, (2, 16000)).astype(np.float32)
    quantised = build_embedder("vggish-pca", weights=weight_file).embed(excerpts)
    assert quantised.shape == (2, 128)
    assert quantised.min() >= 0 and quantised.max() <= 255 and np.array_equal(quantised, np.round(quantised))

    noisy = evaluate_fad(reference, generated, embedder="vggish", weights=weight_file, progress=False)
    assert noisy.fad > 0 and noisy.split_half_fad is not None
    assert noisy.embedding_dim == 128 and noisy.sample_rate == 16000 and noisy.reference_excerpts == 6
    assert noisy.comparable_with_published
