"""The standing bad-input suite: every command, fed what real users feed it.

One table. Each row runs the real console entry point (``orchestrion.cli.main``, in-process) and
checks what a user sees:

* ``error`` rows: exit code 2, one line on stderr starting ``error:`` (the last; a line saying
  what the command was doing may come before it) and holding the expected text (which names
  the file or the option at fault), no traceback, no output file or
  folder left behind, and not one byte changed under the inputs folder (hashed before and after).
* ``usage`` rows: option values refused by the command-line parser itself (exit code 2, its
  message, no traceback, nothing written).
* ``ok`` rows: odd but legitimate input (8-bit, 96 kHz, drums only, 1 bpm, ...), which must work:
  exit code 0, the named outputs written, nothing else touched.

Paths: ``{in}`` is the inputs folder of ``reliability_inputs.py``, ``{out}`` a fresh folder per row that
does not exist yet (a command may create it only for an ``ok`` row).
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from reliability_inputs import folder_digest

from orchestrion.cli import main


@dataclass(frozen=True)
class Case:
    id: str
    args: str
    expect: str = ""  # text the error line must hold (``{in}``/``{out}`` filled in)
    kind: str = "error"  # error | usage | ok
    creates: tuple[str, ...] = ()  # ok rows: the files the command must write
    xfail: str | None = None  # the issue item whose fix is still to land
    needs_permissions: bool = False  # read-only folders: the superuser writes into them anyway


REC = "musika reconstruct {{in}}/audio/{} {{out}}/rec.wav --model {{in}}/model --device cpu"

CASES = [
    # ---- MIDI files into every command that reads MIDI -----------------------------------------
    Case("roundtrip-missing", "symphony roundtrip {in}/midi/nope.mid {out}/o.mid",
         "{in}/midi/nope.mid: cannot read MIDI file (not found)"),
    Case("roundtrip-empty", "symphony roundtrip {in}/midi/empty.mid {out}/o.mid",
         "{in}/midi/empty.mid: empty file (0 bytes), not a MIDI file"),
    Case("roundtrip-random-bytes", "symphony roundtrip {in}/midi/random.mid {out}/o.mid",
         "{in}/midi/random.mid: not a MIDI file (no 'MThd' header"),
    Case("roundtrip-text-as-midi", "symphony roundtrip {in}/midi/text.mid {out}/o.mid",
         "{in}/midi/text.mid: not a MIDI file"),
    Case("roundtrip-header-only", "symphony roundtrip {in}/midi/header_only.mid {out}/o.mid",
         "{in}/midi/header_only.mid: MIDI file has no notes"),
    Case("roundtrip-truncated", "symphony roundtrip {in}/midi/truncated.mid {out}/o.mid",
         "{in}/midi/truncated.mid: not a valid MIDI file, corrupt"),
    Case("roundtrip-zero-length-notes", "symphony roundtrip {in}/midi/zero_length.mid {out}/o.mid",
         "{in}/midi/zero_length.mid: no note left to encode (8 notes in the file: 8 with end ≤ start"),
    Case("roundtrip-tempo-0", "symphony roundtrip {in}/midi/tempo0.mid {out}/o.mid",
         "{in}/midi/tempo0.mid: tempo event at tick 0 sets 0 microseconds per quarter note"),
    Case("roundtrip-format-2", "symphony roundtrip {in}/midi/format2.mid {out}/o.mid",
         "{in}/midi/format2.mid: MIDI format 2 (independent patterns) is not supported"),
    Case("roundtrip-output-is-input", "symphony roundtrip {in}/midi/good.mid {in}/midi/good.mid --overwrite",
         "{in}/midi/good.mid: is also the input"),
    Case("roundtrip-existing-output", "symphony roundtrip {in}/midi/good.mid {in}/existing.mid",
         "{in}/existing.mid: exists; pass --overwrite to replace it"),
    Case("roundtrip-output-is-folder", "symphony roundtrip {in}/midi/good.mid {in}/existing_dir",
         "{in}/existing_dir: is a folder; give a file name for the output"),
    Case("roundtrip-tokens-bad-suffix", "symphony roundtrip {in}/midi/good.mid {out}/o.mid --tokens {out}/t.csv",
         "{out}/t.csv: token files must end in .npy or .txt"),
    Case("roundtrip-garbage-bpe",
         "symphony roundtrip {in}/midi/good.mid {out}/o.mid --bpe {in}/tokens/garbage_bpe.json",
         "{in}/tokens/garbage_bpe.json: Music BPE file is not valid JSON"),
    Case("roundtrip-bpe-and-data", "symphony roundtrip {in}/midi/good.mid {out}/o.mid --bpe {in}/data/music_bpe.json"
         " --data {in}/data", "give either --bpe or --data, not both"),
    Case("roundtrip-data-is-midi-folder", "symphony roundtrip {in}/midi/good.mid {out}/o.mid --data {in}/midi/corpus",
         "{in}/midi/corpus: not a token dataset, it is a folder of MIDI files: make a token dataset with"),
    Case("roundtrip-data-is-a-model", "symphony roundtrip {in}/midi/good.mid {out}/o.mid --data {in}/model",
         "{in}/model: not a token dataset, it holds a model (checkpoint or training run)"),
    Case("roundtrip-drums-only", "symphony roundtrip {in}/midi/drums_only.mid {out}/o.mid", kind="ok",
         creates=("{out}/o.mid",)),
    Case("roundtrip-1-bpm", "symphony roundtrip {in}/midi/bpm1.mid {out}/o.mid", kind="ok", creates=("{out}/o.mid",)),
    Case("roundtrip-1000-bpm", "symphony roundtrip {in}/midi/bpm1000.mid {out}/o.mid", kind="ok",
         creates=("{out}/o.mid",)),
    Case("render-empty-midi", "render {in}/midi/empty.mid {out}/o.wav", "{in}/midi/empty.mid: empty file (0 bytes)"),
    Case("render-random-bytes", "render {in}/midi/random.mid {out}/o.wav", "{in}/midi/random.mid: not a MIDI file"),
    Case("render-tempo-0", "render {in}/midi/tempo0.mid {out}/o.wav",
         "{in}/midi/tempo0.mid: tempo event at tick 0 sets 0 microseconds per quarter note"),
    Case("render-format-2", "render {in}/midi/format2.mid {out}/o.wav", "{in}/midi/format2.mid: MIDI format 2"),
    Case("render-zero-length-notes", "render {in}/midi/zero_length.mid {out}/o.wav",
         "{in}/midi/zero_length.mid: nothing to play: all 8 notes have zero length"),
    Case("render-existing-output", "render {in}/midi/good.mid {in}/existing.wav",
         "{in}/existing.wav: exists; pass --overwrite to replace it"),
    Case("render-sample-rate-0", "render {in}/midi/good.mid {out}/o.wav --sample-rate 0",
         "--sample-rate 0: out of range (8000 to 192000 Hz)"),
    Case("render-sample-rate-1", "render {in}/midi/good.mid {out}/o.wav --sample-rate 1",
         "--sample-rate 1: out of range (8000 to 192000 Hz)"),
    Case("render-sample-rate-10M", "render {in}/midi/good.mid {out}/o.wav --sample-rate 10000000",
         "--sample-rate 10000000: out of range (8000 to 192000 Hz)"),
    Case("render-missing-soundfont", "render {in}/midi/good.mid {out}/o.wav --soundfont {in}/nope.sf2",
         "{in}/nope.sf2"),
    Case("render-output-folder-is-a-file", "render {in}/midi/good.mid {in}/a_file/o.wav", "{in}/a_file"),
    Case("render-drums-only", "render {in}/midi/drums_only.mid {out}/o.wav", kind="ok", creates=("{out}/o.wav",)),
    # ---- symphony tokenize / learn-bpe ----------------------------------------------------------
    Case("tokenize-missing-folder", "symphony tokenize {in}/midi/nope --out {out}/d",
         "{in}/midi/nope: MIDI folder not found"),
    Case("tokenize-no-midi", "symphony tokenize {in}/midi/no_midi --out {out}/d",
         "{in}/midi/no_midi: no .mid or .midi files found"),
    Case("tokenize-only-bad-files", "symphony tokenize {in}/midi/only_bad --out {out}/d",
         "{in}/midi/only_bad: none of the 3 MIDI files could be encoded (first: {in}/midi/only_bad/random.mid: not a"
         " MIDI file"),
    Case("tokenize-text-file", "symphony tokenize {in}/midi/shopping.txt --out {out}/d",
         "{in}/midi/shopping.txt: not a .mid/.midi file"),
    Case("tokenize-out-is-a-file", "symphony tokenize {in}/midi/corpus --out {in}/a_file",
         "{in}/a_file: is a file; --out needs a new (or empty) folder"),
    Case("tokenize-out-not-empty", "symphony tokenize {in}/midi/corpus --out {in}/tokens",
         "{in}/tokens: folder is not empty and is not an unfinished dataset"),
    Case("tokenize-workers-0", "symphony tokenize {in}/midi/corpus --out {out}/d -j 0",
         "the number of worker processes (-j/--workers) must be at least 1, got 0"),
    Case("tokenize-workers-negative", "symphony tokenize {in}/midi/corpus --out {out}/d -j -2",
         "the number of worker processes (-j/--workers) must be at least 1, got -2"),
    Case("tokenize-shard-files-0", "symphony tokenize {in}/midi/corpus --out {out}/d --shard-files 0",
         "files per shard must be positive, got 0"),
    Case("tokenize-learn-bpe-0", "symphony tokenize {in}/midi/corpus --out {out}/d --learn-bpe 0",
         "number of merges to learn must be positive, got 0"),
    Case("tokenize-bpe-and-learn", "symphony tokenize {in}/midi/corpus --out {out}/d --learn-bpe 5 "
         "--bpe {in}/data/music_bpe.json", "give either a Music BPE file or a number of merges to learn"),
    Case("tokenize-garbage-bpe", "symphony tokenize {in}/midi/corpus --out {out}/d --bpe {in}/tokens/garbage_bpe.json",
         "{in}/tokens/garbage_bpe.json: Music BPE file is not valid JSON"),
    Case("tokenize-huge-workers", "symphony tokenize {in}/midi/corpus --out {out}/d -j 1000 --shard-files 1",
         kind="ok", creates=("{out}/d/manifest.json",)),
    Case("tokenize-one-file", "symphony tokenize {in}/midi/good.mid --out {out}/d", kind="ok",
         creates=("{out}/d/manifest.json",)),
    Case("learn-bpe-merges-0", "symphony learn-bpe {in}/midi/corpus --merges 0 --out {out}/b.json",
         "--merges must be positive, got 0"),
    Case("learn-bpe-merges-negative", "symphony learn-bpe {in}/midi/corpus --merges -7 --out {out}/b.json",
         "--merges must be positive, got -7"),
    Case("learn-bpe-workers-0", "symphony learn-bpe {in}/midi/corpus --merges 5 --out {out}/b.json -j 0",
         "must be at least 1, got 0"),
    Case("learn-bpe-existing-output", "symphony learn-bpe {in}/midi/corpus --merges 5 --out {in}/existing.json",
         "{in}/existing.json: exists; pass --overwrite to replace it"),
    Case("learn-bpe-no-midi", "symphony learn-bpe {in}/midi/no_midi --merges 5 --out {out}/b.json",
         "{in}/midi/no_midi: no .mid or .midi files found"),
    Case("learn-bpe-only-bad-files", "symphony learn-bpe {in}/midi/only_bad --merges 5 --out {out}/b.json",
         "no usable MIDI files in {in}/midi/only_bad (none could be encoded) (3 skipped: {in}/midi/only_bad/random.mid"
         ": not a MIDI file"),
    Case("learn-bpe-huge-merges", "symphony learn-bpe {in}/midi/corpus --merges 1000000 --out {out}/b.json",
         kind="ok", creates=("{out}/b.json",)),
    # ---- token files and datasets --------------------------------------------------------------
    Case("detokenize-empty", "symphony detokenize {in}/tokens/empty.txt --out {out}/o.mid",
         "{in}/tokens/empty.txt: holds no tokens (0 steps)"),
    Case("detokenize-negative-id", "symphony detokenize {in}/tokens/negative.npy --out {out}/o.mid",
         "{in}/tokens/negative.npy: event id -3 at step 0 is outside the vocabulary"),
    Case("detokenize-huge-id", "symphony detokenize {in}/tokens/huge_id.npy --out {out}/o.mid --data {in}/data",
         "{in}/tokens/huge_id.npy: event id 1000000 at step 0 is outside the vocabulary"),
    Case("detokenize-no-note", "symphony detokenize {in}/tokens/no_note.npy --out {out}/o.mid",
         "{in}/tokens/no_note.npy: the 1 token steps hold no playable note"),
    Case("detokenize-three-columns", "symphony detokenize {in}/tokens/three_columns.npy --out {out}/o.mid",
         "{in}/tokens/three_columns.npy: expected an integer (steps, 4) array, got int32 (4, 3)"),
    Case("detokenize-floats", "symphony detokenize {in}/tokens/floats.npy --out {out}/o.mid",
         "{in}/tokens/floats.npy: expected an integer (steps, 4) array, got float32"),
    Case("detokenize-garbage-npy", "symphony detokenize {in}/tokens/garbage.npy --out {out}/o.mid",
         "{in}/tokens/garbage.npy: not a readable .npy token file"),
    Case("detokenize-five-strings", "symphony detokenize {in}/tokens/five_strings.txt --out {out}/o.mid",
         "{in}/tokens/five_strings.txt: 5 strings is not a whole number of 4-field steps"),
    Case("detokenize-unknown-strings", "symphony detokenize {in}/tokens/unknown_strings.txt --out {out}/o.mid",
         "{in}/tokens/unknown_strings.txt: step 0 'Q9 Q9 Q9 Q9': duration, track or instrument is not an MMR string"),
    Case("detokenize-chord-name-without-merges", "symphony detokenize {in}/tokens/unknown_event.txt --out {out}/o.mid",
         "{in}/tokens/unknown_event.txt: unknown MMR event string 'C4E4G4' at step 1 (merged chord tokens need the "
         "Music BPE file: --bpe or --data)"),
    Case("detokenize-binary-txt", "symphony detokenize {in}/tokens/binary.txt --out {out}/o.mid",
         "{in}/tokens/binary.txt: not a text token file (not UTF-8 text)"),
    Case("detokenize-json-list-as-bpe", "symphony detokenize {in}/tokens/bpe.npy --out {out}/o.mid --bpe "
         "{in}/tokens/list_bpe.json", "{in}/tokens/list_bpe.json: not a Music BPE file (a JSON list, not an object)"),
    Case("detokenize-64-bit-ids", "symphony detokenize {in}/tokens/int64_ids.npy --out {out}/o.mid",
         "{in}/tokens/int64_ids.npy: token ids beyond the 32-bit range (1099511627776 to 1099511627776)"),
    Case("detokenize-csv", "symphony detokenize {in}/tokens/tokens.csv --out {out}/o.mid",
         "{in}/tokens/tokens.csv: token files must end in .npy or .txt"),
    Case("detokenize-bpe-without-merges", "symphony detokenize {in}/tokens/bpe.npy --out {out}/o.mid",
         "{in}/tokens/bpe.npy: holds Music BPE tokens; name the merges with --bpe FILE or --data DIR"),
    Case("detokenize-dataset-without-piece", "symphony detokenize {in}/data --out {out}/o.mid",
         "{in}/data: a dataset folder needs --piece INDEX"),
    Case("detokenize-piece-999", "symphony detokenize {in}/data --piece 999 --out {out}/o.mid",
         "{in}/data: --piece 999 is out of range, the dataset has 3 pieces (0-2)"),
    Case("detokenize-piece-huge", "symphony detokenize {in}/data --piece 99999999999999999999 --out {out}/o.mid",
         "{in}/data: --piece 99999999999999999999 is out of range, the dataset has 3 pieces"),
    Case("detokenize-piece-negative", "symphony detokenize {in}/data --piece -1 --out {out}/o.mid",
         "--piece must be 0 or more (pieces are numbered from 0), got -1"),
    Case("detokenize-existing-output", "symphony detokenize {in}/tokens/good.npy --out {in}/existing.mid",
         "{in}/existing.mid: exists; pass --overwrite to replace it"),
    Case("detokenize-output-is-input", "symphony detokenize {in}/tokens/good.npy --out {in}/tokens/good.npy "
         "--overwrite", "{in}/tokens/good.npy: is also the input"),
    Case("stats-bins-0", "symphony stats {in}/data --bins 0", "--bins must be 1-200, got 0"),
    Case("stats-bins-negative", "symphony stats {in}/data --bins -3", "--bins must be 1-200, got -3"),
    Case("stats-bins-huge", "symphony stats {in}/data --bins 1000000", "--bins must be 1-200, got 1000000"),
    Case("stats-missing-folder", "symphony stats {in}/nope", "{in}/nope: dataset folder not found"),
    Case("stats-midi-folder", "symphony stats {in}/midi/corpus",
         "{in}/midi/corpus: not a token dataset, it is a folder of MIDI files"),
    Case("stats-unfinished-dataset", "symphony stats {in}/unfinished",
         "{in}/unfinished: not a token dataset, manifest.json is missing (tokenizing did not finish"),
    Case("stats-garbage-manifest", "symphony stats {in}/bad_manifest",
         "{in}/bad_manifest/manifest.json: dataset manifest is not valid JSON"),
    Case("stats-manifest-without-shards", "symphony stats {in}/manifest_without_shards",
         "{in}/manifest_without_shards/manifest.json: dataset manifest is damaged (missing or malformed: shards)"),
    Case("stats-lost-shard", "symphony stats {in}/lost_shard",
         "{in}/lost_shard: shard shard-00000 is missing or corrupt"),
    Case("stats-existing-png", "symphony stats {in}/data --png {in}/existing.png",
         "{in}/existing.png: exists; pass --overwrite to replace it"),
    Case("pianoroll-piece-999", "symphony pianoroll {in}/data {out}/r.png --piece 999",
         "{in}/data: --piece 999 is out of range"),
    Case("pianoroll-piece-negative", "symphony pianoroll {in}/data {out}/r.png --piece -1",
         "--piece must be 0 or more"),
    Case("pianoroll-random-bytes", "symphony pianoroll {in}/midi/random.mid {out}/r.png",
         "{in}/midi/random.mid: not a MIDI file"),
    Case("pianoroll-midi-with-piece", "symphony pianoroll {in}/midi/good.mid {out}/r.png --piece 0",
         "--piece only applies to a dataset folder"),
    Case("pianoroll-existing-output", "symphony pianoroll {in}/midi/good.mid {in}/existing.png",
         "{in}/existing.png: exists; pass --overwrite to replace it"),
    Case("pianoroll-drums-only", "symphony pianoroll {in}/midi/drums_only.mid {out}/r.png", kind="ok",
         creates=("{out}/r.png",)),
    # ---- SymphonyNet models and symbolic evaluation ---------------------------------------------
    Case("symphony-train-on-midi-folder", "symphony train {in}/midi/corpus --out {out}/run --preset debug --steps 1",
         "{in}/midi/corpus: not a token dataset, it is a folder of MIDI files"),
    Case("symphony-train-unknown-preset", "symphony train {in}/data --out {out}/run --preset nonsense --steps 1",
         "unknown SymphonyNet preset 'nonsense'"),
    Case("symphony-generate-model-of-another-kind", "symphony generate --model {in}/model --out {out}/g.mid",
         "{in}/model: holds a 'musika.autoencoder_training' model, not a SymphonyNet model"),
    Case("symphony-generate-missing-model", "symphony generate --model {in}/nope --out {out}/g.mid",
         "{in}/nope: no such checkpoint or run directory"),
    Case("symphony-orchestrate-model-of-another-kind", "symphony orchestrate {in}/midi/good.mid --model {in}/model "
         "--out {out}/o.mid", "{in}/model: holds a 'musika.autoencoder_training' model, not a SymphonyNet model"),
    Case("evaluate-symphony-model-of-another-kind", "evaluate symphony {in}/model",
         "{in}/model: holds a 'musika.autoencoder_training' model, not a SymphonyNet model"),
    Case("evaluate-symbolic-no-midi", "evaluate symbolic {in}/midi/no_midi {in}/midi/corpus",
         "{in}/midi/no_midi: no MIDI files found"),
    Case("evaluate-symbolic-existing-json", "evaluate symbolic {in}/midi/corpus {in}/midi/corpus --json "
         "{in}/existing.json", "{in}/existing.json: exists; pass --overwrite to replace it"),
    Case("evaluate-fad-no-audio", "evaluate fad {in}/audio/no_audio {in}/audio/only_short",
         "{in}/audio/no_audio: no audio files found"),
    Case("train-gan-on-token-dataset", "musika train-gan {in}/data --out {out}/gan --steps 1",
         "{in}/data/manifest.json: not a latent chunk manifest (format 'orchestrion-token-dataset'"),
    Case("prepare-latents-missing-folder", "musika prepare-latents {in}/audio/nope --model {in}/model --out {out}/lat",
         "{in}/audio/nope: audio file or folder does not exist"),
    Case("prepare-latents-model-is-token-dataset", "musika prepare-latents {in}/audio/only_short --model {in}/data "
         "--out {out}/lat", "{in}/data: is a 'orchestrion-token-dataset' folder, not a model checkpoint"),
    # ---- audio into the Musika autoencoder ------------------------------------------------------
    Case("reconstruct-empty", REC.format("empty.wav"), "{in}/audio/empty.wav: file is empty (0 bytes)"),
    Case("reconstruct-text-as-audio", REC.format("text.wav"), "{in}/audio/text.wav: not a readable audio file"),
    Case("reconstruct-truncated", REC.format("truncated.wav"), "{in}/audio/truncated.wav: truncated"),
    Case("reconstruct-zero-samples", REC.format("zero_samples.wav"),
         "{in}/audio/zero_samples.wav: contains no audio samples"),
    Case("reconstruct-nan", REC.format("nan.wav"), "{in}/audio/nan.wav: contains NaN or infinite samples"),
    Case("reconstruct-6-channels", REC.format("six_channels.wav"), kind="ok", creates=("{out}/rec.wav",)),
    Case("reconstruct-8-bit", REC.format("pcm8.wav"), kind="ok", creates=("{out}/rec.wav",)),
    Case("reconstruct-float", REC.format("float.wav"), kind="ok", creates=("{out}/rec.wav",)),
    Case("reconstruct-8-khz", REC.format("rate8k.wav"), kind="ok", creates=("{out}/rec.wav",)),
    Case("reconstruct-96-khz", REC.format("rate96k.wav"), kind="ok", creates=("{out}/rec.wav",)),
    Case("reconstruct-mono", REC.format("mono.wav"), kind="ok", creates=("{out}/rec.wav",)),
    Case("reconstruct-shorter-than-a-crop", REC.format("short.wav"), kind="ok", creates=("{out}/rec.wav",)),
    Case("reconstruct-output-is-input", "musika reconstruct {in}/audio/good.wav {in}/audio/good.wav --model "
         "{in}/model --device cpu", "{in}/audio/good.wav: is also the input"),
    Case("reconstruct-existing-output", "musika reconstruct {in}/audio/good.wav {in}/existing.wav --model {in}/model"
         " --device cpu", "{in}/existing.wav: exists; pass --overwrite"),
    Case("reconstruct-tampered-model", REC.format("good.wav").replace("{in}/model", "{in}/tampered"),
         "{in}/tampered: model.safetensors does not match its sha256"),
    Case("reconstruct-garbage-model", REC.format("good.wav").replace("{in}/model", "{in}/garbage_checkpoint"),
         "{in}/garbage_checkpoint"),
    Case("reconstruct-model-of-another-kind", REC.format("good.wav").replace("{in}/model", "{in}/other_kind"),
         "must be a Musika autoencoder run"),
    Case("reconstruct-model-is-token-dataset", REC.format("good.wav").replace("{in}/model", "{in}/data"),
         "{in}/data: is a 'orchestrion-token-dataset' folder, not a model checkpoint"),
    Case("reconstruct-missing-model", REC.format("good.wav").replace("{in}/model", "{in}/nope"), "{in}/nope"),
    Case("reconstruct-device-tpu", REC.format("good.wav").replace("cpu", "tpu"), "tpu"),
    Case("encode-no-audio", "musika encode {in}/audio/no_audio --model {in}/model --out {out}/lat --device cpu",
         "no audio files"),
    Case("encode-only-bad-files", "musika encode {in}/audio/only_bad --model {in}/model --out {out}/lat --device cpu",
         "no usable audio in {in}/audio/only_bad (2 skipped: {in}/audio/only_bad/text.wav: not a readable audio file"),
    Case("decode-missing-latents", "musika decode {in}/nope --model {in}/model --out {out}/dec --device cpu",
         "{in}/nope"),
    Case("decode-garbage-latent", "musika decode {in}/tokens/garbage.npy --model {in}/model --out {out}/dec "
         "--device cpu", "{in}/tokens/garbage.npy"),
    Case("evaluate-json-is-a-folder", "evaluate reconstruction {in}/audio/only_short --model {in}/model --json "
         "{in}/existing_dir", "{in}/existing_dir"),
    Case("evaluate-no-audio", "evaluate reconstruction {in}/audio/no_audio --model {in}/model", "no audio files"),
    Case("train-missing-folder", "musika train-ae {in}/audio/nope --out {out}/run --preset debug --steps 1 "
         "--workers 0", "does not exist"),
    Case("train-no-audio", "musika train-ae {in}/audio/no_audio --out {out}/run --preset debug --steps 1 --workers 0",
         "no audio files"),
    Case("train-audio-shorter-than-a-crop", "musika train-ae {in}/audio/only_short --out {out}/run --preset debug "
         "--steps 1 --workers 0", "{in}/audio/only_short/short.wav: too short to train on (0.05 s"),
    Case("train-unknown-preset", "musika train-ae {in}/audio/only_short --out {out}/run --preset huge --steps 1",
         "unknown preset 'huge'"),
    Case("train-batch-size-0", "musika train-ae {in}/audio/only_short --out {out}/run --batch-size 0",
         "Invalid value for '--batch-size'", kind="usage"),
    Case("train-steps-negative", "musika train-ae {in}/audio/only_short --out {out}/run --steps -5",
         "Invalid value for '--steps'", kind="usage"),
    Case("train-level-3", "musika train-ae {in}/audio/only_short --out {out}/run --level 3",
         "Invalid value for '--level'", kind="usage"),
    Case("inspect-garbage-checkpoint", "inspect {in}/garbage_checkpoint", "{in}/garbage_checkpoint"),
    Case("inspect-missing", "inspect {in}/nope", "{in}/nope"),
    Case("inspect-token-dataset", "inspect {in}/data", "{in}/data"),
    Case("corpus-unknown-name", "corpus export no-such-corpus {out}/c", "no-such-corpus"),
    Case("corpus-export-into-a-file", "corpus export demo {in}/a_file --limit 1",
         "{in}/a_file: is a file; give a folder for the MIDI files"),
    Case("roundtrip-read-only-folder", "symphony roundtrip {in}/midi/good.mid {in}/read_only/o.mid",
         "{in}/read_only", needs_permissions=True),
    Case("reconstruct-read-only-folder", "musika reconstruct {in}/audio/good.wav {in}/read_only/o.wav --model "
         "{in}/model --device cpu", "{in}/read_only", needs_permissions=True),
    Case("corpus-limit-negative", "corpus export demo {out}/c --limit -1", "--limit must be >= 0, got -1"),
]


def _params() -> list:
    params = []
    for case in CASES:
        marks = [pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else []
        if case.needs_permissions:
            marks.append(pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions"))
        params.append(pytest.param(case, id=case.id, marks=marks))
    return params


def _run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, argv: list[str]) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["orchestrion", *argv])
    with pytest.raises(SystemExit) as info:
        main()
    captured = capsys.readouterr()
    code = info.value.code
    return (0 if code is None else code), captured.out, captured.err


def test_the_table_is_big_enough() -> None:
    errors = [c for c in CASES if c.kind != "ok"]
    assert len(errors) >= 60 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", _params())
def test_bad_input(case: Case, inputs: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    out = tmp_path / "out"
    fill = {"in": str(inputs), "out": str(out)}
    argv = [arg.format(**fill) for arg in shlex.split(case.args)]
    before = folder_digest(inputs)
    monkeypatch.setenv("COLUMNS", "300")
    code, stdout, stderr = _run(monkeypatch, capsys, argv)
    assert "Traceback" not in stdout + stderr, stdout + stderr
    assert folder_digest(inputs) == before, "an input or an existing file was changed"
    expected = case.expect.format(**fill)
    if case.kind == "ok":
        assert code == 0, stdout + stderr
        for created in case.creates:
            assert os.path.getsize(created.format(**fill)) > 0
        return
    assert code == 2, f"exit code {code}\n{stdout}{stderr}"
    assert not out.exists(), f"left behind: {sorted(str(p) for p in out.rglob('*'))}"
    if case.kind == "usage":
        assert expected in " ".join(stderr.split()), stderr
        return
    # Lines before the error may say what the command was doing ("using model ..."); the error is
    # one line, the last.
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: "), stderr
    assert sum(line.startswith("error:") for line in lines) == 1, stderr
    assert expected in lines[-1], lines[-1]
