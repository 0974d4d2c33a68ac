"""Bad inputs for the standing suite: real files of every broken kind (no tests here).

Everything lives under one folder (``inputs``): audio files, MIDI files, token files, token
datasets and model checkpoints, each good one next to its broken variants. The suite hashes this
folder before and after every command, so a command that writes into it, or over a file in it,
fails.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import soundfile as sf
import symusic

SAMPLE_RATE = 22050
TPQ = 480


def _tone(seconds: float, sample_rate: int, channels: int = 1) -> np.ndarray:
    """A plucked two-note figure, ``(samples, channels)`` float32 in [-0.5, 0.5]."""
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    wave = 0.5 * np.sin(2 * np.pi * np.where(t < seconds / 2, 220.0, 330.0) * t) * np.exp(-2 * (t % 0.5))
    return np.repeat(wave[:, None], channels, axis=1).astype(np.float32)


def _write_audio(folder: Path) -> None:
    folder.mkdir()
    sf.write(folder / "good.wav", _tone(1.0, SAMPLE_RATE, 2), SAMPLE_RATE, subtype="PCM_16")
    (folder / "empty.wav").write_bytes(b"")
    (folder / "text.wav").write_text("these are liner notes, not audio\n")
    whole = (folder / "good.wav").read_bytes()
    (folder / "truncated.wav").write_bytes(whole[: len(whole) // 3])
    sf.write(folder / "zero_samples.wav", np.zeros((0, 2), np.float32), SAMPLE_RATE, subtype="PCM_16")
    nan = _tone(1.0, SAMPLE_RATE, 2)
    nan[1000:1100] = np.nan
    sf.write(folder / "nan.wav", nan, SAMPLE_RATE, subtype="FLOAT")
    sf.write(folder / "pcm8.wav", _tone(1.0, SAMPLE_RATE, 2), SAMPLE_RATE, subtype="PCM_U8")
    sf.write(folder / "float.wav", _tone(1.0, SAMPLE_RATE, 2), SAMPLE_RATE, subtype="FLOAT")
    sf.write(folder / "rate8k.wav", _tone(1.0, 8000, 2), 8000, subtype="PCM_16")
    sf.write(folder / "rate96k.wav", _tone(1.0, 96000, 2), 96000, subtype="PCM_16")
    sf.write(folder / "mono.wav", _tone(1.0, SAMPLE_RATE, 1), SAMPLE_RATE, subtype="PCM_16")
    sf.write(folder / "six_channels.wav", _tone(1.0, SAMPLE_RATE, 6), SAMPLE_RATE, subtype="PCM_16")
    sf.write(folder / "short.wav", _tone(0.05, SAMPLE_RATE, 2), SAMPLE_RATE, subtype="PCM_16")
    (folder / "only_short").mkdir()
    shutil.copy(folder / "short.wav", folder / "only_short" / "short.wav")
    (folder / "no_audio").mkdir()
    (folder / "no_audio" / "readme.txt").write_text("no audio here")
    (folder / "only_bad").mkdir()
    shutil.copy(folder / "text.wav", folder / "only_bad" / "text.wav")
    shutil.copy(folder / "truncated.wav", folder / "only_bad" / "truncated.wav")


def _score(tracks: list[tuple[int, bool, list[tuple[int, int, int]]]], qpm: float = 120.0) -> symusic.Score:
    score = symusic.Score(TPQ)
    score.time_signatures.append(symusic.TimeSignature(0, 4, 4))
    score.tempos.append(symusic.Tempo(0, qpm=qpm))
    for program, is_drum, notes in tracks:
        track = symusic.Track(name=f"program {program}", program=program, is_drum=is_drum)
        for start, duration, pitch in notes:
            track.notes.append(symusic.Note(start, duration, pitch, 80))
        score.tracks.append(track)
    return score


def _smf(midi_format: int, tracks: list[list[bytes]]) -> bytes:
    """A Standard MIDI File built byte by byte: each track is a list of (delta-time + event) bytes."""
    chunks = []
    for events in tracks:
        body = b"".join(events) + b"\x00\xff\x2f\x00"
        chunks.append(b"MTrk" + len(body).to_bytes(4, "big") + body)
    header = b"MThd" + (6).to_bytes(4, "big") + midi_format.to_bytes(2, "big") + len(tracks).to_bytes(2, "big")
    return header + TPQ.to_bytes(2, "big") + b"".join(chunks)


_NOTE = [b"\x00\x90\x3c\x50", b"\x83\x60\x80\x3c\x00"]  # C4 for one quarter (delta 480 = 0x83 0x60)


def _write_midi(folder: Path) -> None:
    folder.mkdir()
    melody = [(k * TPQ, TPQ, 60 + (k * 5) % 12) for k in range(64)]
    chords = [(k * 2 * TPQ, 2 * TPQ, p) for k in range(32) for p in (48 + k % 5, 52 + k % 5, 55 + k % 5)]
    (folder / "good.mid").write_bytes(_score([(40, False, melody), (42, False, chords)]).dumps_midi())
    (folder / "empty.mid").write_bytes(b"")
    (folder / "random.mid").write_bytes(np.random.default_rng(0).bytes(4096))
    (folder / "text.mid").write_text("MIDI file? no, a shopping list\n")
    (folder / "header_only.mid").write_bytes(_smf(1, [])[:14])
    whole = (folder / "good.mid").read_bytes()
    (folder / "truncated.mid").write_bytes(whole[: len(whole) // 2])
    (folder / "zero_length.mid").write_bytes(_score([(0, False, [(k * TPQ, 0, 60) for k in range(8)])]).dumps_midi())
    (folder / "tempo0.mid").write_bytes(_smf(1, [[b"\x00\xff\x51\x03\x00\x00\x00", *_NOTE]]))
    (folder / "format2.mid").write_bytes(_smf(2, [_NOTE, _NOTE]))
    kit = [(k * TPQ // 2, TPQ // 4, (36, 42, 38, 42)[k % 4]) for k in range(64)]
    (folder / "drums_only.mid").write_bytes(_score([(0, True, kit)]).dumps_midi())
    (folder / "bpm1.mid").write_bytes(_score([(0, False, melody[:8])], qpm=1.0).dumps_midi())
    (folder / "bpm1000.mid").write_bytes(_score([(0, False, melody)], qpm=1000.0).dumps_midi())
    (folder / "corpus").mkdir()
    for k in range(3):
        notes = [(start + k * TPQ, dur, pitch + k) for start, dur, pitch in melody]
        piece = _score([(40, False, notes), (42, False, chords)])
        (folder / "corpus" / f"piece{k}.mid").write_bytes(piece.dumps_midi())
    (folder / "no_midi").mkdir()
    (folder / "no_midi" / "readme.txt").write_text("no MIDI here")
    (folder / "only_bad").mkdir()
    for name in ("random.mid", "zero_length.mid", "tempo0.mid"):
        shutil.copy(folder / name, folder / "only_bad" / name)
    (folder / "shopping.txt").write_text("milk\n")


def _write_tokens_and_datasets(root: Path) -> None:
    from orchestrion.symbolic import mmr
    from orchestrion.symbolic.dataset import TokenDataset
    from orchestrion.symbolic.mmr_vocab import BASE_EVENT_VOCAB_SIZE
    from orchestrion.symbolic.preprocess import tokenize_corpus

    tokenize_corpus(root / "midi" / "corpus", root / "data", learn_bpe=5)
    dataset = TokenDataset(root / "data")
    tokens = root / "tokens"
    tokens.mkdir()
    np.save(tokens / "good.npy", mmr.encode(root / "midi" / "good.mid").tokens)
    np.save(tokens / "bpe.npy", np.asarray(dataset.piece(0), np.int32))
    (tokens / "empty.txt").write_text("")
    np.save(tokens / "negative.npy", np.array([[-3, 5, 4, 4]], np.int32))
    np.save(tokens / "huge_id.npy", np.array([[10**6, 5, 4, 4]], np.int32))
    np.save(tokens / "no_note.npy", np.array([[BASE_EVENT_VOCAB_SIZE - 1, 0, 0, 0]], np.int32))
    np.save(tokens / "three_columns.npy", np.zeros((4, 3), np.int32))
    np.save(tokens / "floats.npy", np.zeros((4, 4), np.float32))
    (tokens / "garbage.npy").write_bytes(b"\x93NUMPY garbage")
    (tokens / "five_strings.txt").write_text("E5 r8 t0 xE p0\n")
    (tokens / "unknown_strings.txt").write_text("Q9 Q9 Q9 Q9\n")
    (tokens / "unknown_event.txt").write_text("E5 r8 t0 xE\nC4E4G4 r8 t0 xE\n")
    (tokens / "tokens.csv").write_text("1,2,3,4\n")
    (tokens / "garbage_bpe.json").write_text("{not json")
    (tokens / "list_bpe.json").write_text("[1, 2]")
    np.save(tokens / "int64_ids.npy", np.full((3, 4), 2**40, np.int64))

    (root / "unfinished").mkdir()
    (root / "unfinished" / "plan.json").write_text(json.dumps({"source": "x", "files": []}))
    shutil.copytree(root / "data", root / "bad_manifest")
    (root / "bad_manifest" / "manifest.json").write_text("{cut short")
    shutil.copytree(root / "data", root / "manifest_without_shards")
    manifest = json.loads((root / "data" / "manifest.json").read_text())
    del manifest["shards"]
    (root / "manifest_without_shards" / "manifest.json").write_text(json.dumps(manifest))
    (tokens / "binary.txt").write_bytes(np.random.default_rng(1).bytes(300))
    shutil.copytree(root / "data", root / "lost_shard")
    next((root / "lost_shard").glob("shard-*.tokens.npy")).unlink()


def _write_checkpoints(root: Path) -> None:
    from orchestrion.checkpoint import save_checkpoint
    from orchestrion.musika.autoencoder import Level1Decoder, Level1Encoder
    from orchestrion.musika.config import AutoencoderTrainingConfig, DiscriminatorConfig

    config = AutoencoderTrainingConfig.preset_config("debug", level=1, phase=2)
    modules = {"level1_encoder": Level1Encoder(config.level1), "level1_decoder": Level1Decoder(config.level1)}
    model = save_checkpoint(root / "model", config=config, modules=modules)
    shutil.copytree(model, root / "tampered")
    with open(root / "tampered" / "model.safetensors", "r+b") as handle:
        handle.seek(-4, 2)
        handle.write(b"\0\0\0\0")
    shutil.copytree(model, root / "garbage_checkpoint")
    (root / "garbage_checkpoint" / "config.json").write_text("garbage")
    (root / "garbage_checkpoint" / "model.safetensors").write_bytes(b"garbage")
    save_checkpoint(root / "other_kind", config=DiscriminatorConfig(), modules={})


def folder_digest(root: Path) -> dict[str, str]:
    """Every file (sha256) and folder (``"dir"``) under ``root``, by relative path."""
    return {
        str(p.relative_to(root)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
    }


def write_inputs(root: Path) -> Path:
    """Fill ``root`` with the inputs described above; returns it."""
    _write_audio(root / "audio")
    _write_midi(root / "midi")
    _write_tokens_and_datasets(root)
    _write_checkpoints(root)
    (root / "existing.wav").write_bytes((root / "audio" / "good.wav").read_bytes())
    (root / "existing.mid").write_bytes((root / "midi" / "good.mid").read_bytes())
    (root / "existing.png").write_bytes(b"\x89PNG the user's picture")
    (root / "existing.json").write_text('{"the user\'s": "file"}')
    (root / "existing_dir").mkdir()
    (root / "a_file").write_text("a file where a folder is expected")
    (root / "read_only").mkdir()
    (root / "read_only").chmod(0o555)
    return root
