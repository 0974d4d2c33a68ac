"""scripts/evaluation_report.py end to end on tiny real models: every table, the same numbers in JSON and Markdown."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from pathlib import Path

import pytest

from orchestrion.evaluation.report import format_number

ROOT = Path(__file__).resolve().parents[2]
CLIPS, CLIP_SECONDS, PIECES, BARS = 2, 2, 3, 4
LINEAR_CODE = "linear 16-dim frame code (PCA of training frames) + input phase"  # debug level-1 latent: 16 dims
AUTOENCODER_ROWS = [
    "l1p1 (magnitude + input phase)", "l1p1 magnitude + Griffin-Lim phase (32 it.)",
    "l1p2", "l1p2 magnitude + Griffin-Lim phase (32 it.)", LINEAR_CODE,
    "exact magnitude + Griffin-Lim phase (32 it.)", "exact magnitude + random phase", "front end round trip (ceiling)",
]


def _script():
    spec = importlib.util.spec_from_file_location("evaluation_report", ROOT / "scripts" / "evaluation_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, chorale_midi: Path) -> dict[str, Path]:
    """Rendered audio (2 training files, 1 held out, 1 synthetic out-of-domain), a trained chain of
    debug autoencoders, a debug latent-GAN run and a debug SymphonyNet run trained on 12 chorales."""
    from musika.gan_support import one_thread, write_gan_run
    from musika.train_support import write_music_folder
    from orchestrion.corpora.export import render_corpus
    from orchestrion.musika.train import train_autoencoder
    from orchestrion.symbolic.preprocess import tokenize_corpus
    from orchestrion.symphony.train import train_symphony

    root = tmp_path_factory.mktemp("report_inputs")
    rendered = render_corpus("demo", root / "rendered", limit=3)
    for folder, files in (("train", rendered[:2]), ("heldout", rendered[2:])):
        (root / folder).mkdir()
        for path in files:
            shutil.copy(path, root / folder)
    write_music_folder(root / "ood", n_files=1, seconds=3.0)
    with one_thread():
        train_autoencoder(root / "train", root / "l1p1", level=1, phase=1, preset="debug", steps=6, log_every=1,
                          progress=False)
        train_autoencoder(root / "train", root / "l1p2", level=1, phase=2, init=root / "l1p1", steps=2,
                          log_every=1, progress=False)
        write_gan_run(root / "gan")
        tokenize_corpus(chorale_midi, root / "tokens")
        train_symphony(root / "tokens", root / "symphony", preset="debug", steps=40, valid_fraction=0.25,
                       log_every=10, progress=False, device="cpu")
    return {name: root / name for name in ("train", "heldout", "ood", "l1p1", "l1p2", "gan", "symphony")} | {
        "midi": chorale_midi}


def _arguments(inputs: dict[str, Path], out: Path) -> list[str]:
    return [
        "--musika-model", str(inputs["gan"]), "--train-audio", str(inputs["train"]),
        "--heldout-audio", str(inputs["heldout"]), "--ood-audio", str(inputs["ood"]),
        "--autoencoders", f"l1p1={inputs['l1p1']},l1p2={inputs['l1p2']}",
        "--symphony-model", str(inputs["symphony"]), "--midi", str(inputs["midi"]),
        "--clips", str(CLIPS), "--clip-seconds", str(CLIP_SECONDS), "--files", "1", "--excerpt-seconds", "2",
        "--pieces", str(PIECES), "--bars", str(BARS), "--out", str(out),
    ]


@pytest.fixture(scope="module")
def report(inputs, tmp_path_factory) -> dict:
    from musika.gan_support import one_thread

    out = tmp_path_factory.mktemp("docs")
    arguments = _arguments(inputs, out)
    with one_thread():
        assert _script().main(arguments) == 0
    return {"out": out, "arguments": arguments, "markdown": (out / "evaluation.md").read_text(),
            "json": json.loads((out / "evaluation.json").read_text())}


def _markdown_table(markdown: str, title: str) -> dict[str, list[str]]:
    """The rows (label → cells) of the Markdown table under the bold ``title``."""
    lines = markdown[markdown.index(f"**{title}**") :].splitlines()[2:]
    rows = {}
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


def test_every_section_table_and_picture_is_there(report) -> None:
    markdown, data = report["markdown"], report["json"]
    for heading in ("## Musika: generated audio (FAD)", "## Musika autoencoders: reconstruction quality",
                    "## SymphonyNet: generated pieces"):
        assert heading in markdown
    assert data["left_out"] == {}
    fad = data["musika"]["tables"][0]
    labels = [row["system"] for row in fad["rows"]]
    assert labels[:3] == [f"generated, note density {v}" for v in ("0.25", "0.5", "0.75")]
    assert labels[3:-1] == ["random level-2 latents, decoded", "training audio (real vs real)",
                            "spectrum-matched noise"]
    assert labels[-1].startswith("held-out split-half")
    # every compared set has the same size: N clips of S seconds give N·S one-second excerpts
    assert {row["values"][1] for row in fad["rows"][:-1]} == {CLIPS * CLIP_SECONDS}
    onsets = data["musika"]["tables"][1]  # the model is conditioned on note density: its control is measured
    assert onsets["title"].startswith("Note-density control: madmom onsets per second")
    assert [row["system"] for row in onsets["rows"]] == [*labels[:3], "training audio", "held-out audio"]
    assert all(row["values"][0] >= 0 for row in onsets["rows"])
    assert min(row["values"][0] for row in onsets["rows"][3:]) > 0  # rendered chorales have onsets
    titles = [table["title"] for table in data["autoencoders"]["tables"]]
    assert [t.split(":")[0] for t in titles] == ["training", "held-out", "out-of-domain"]
    for table in data["autoencoders"]["tables"]:
        assert [row["system"] for row in table["rows"]] == AUTOENCODER_ROWS
        assert list(_markdown_table(markdown, table["title"])) == AUTOENCODER_ROWS
    intro = data["autoencoders"]["markdown"]
    assert "*NAME magnitude + Griffin-Lim phase*" in intro and "*linear frame code*" in intro
    # fitted on the training folder's two files, not on their excerpts alone
    assert "middle 60 s of 2 files of the training folder (all of them;" in intro
    assert data["autoencoders"]["data"]["linear_code"]["dims"] == [16]  # the debug level-1 latent size
    headline = data["symphony"]["tables"][0]
    assert headline["columns"] == ["mean OA ↑", "pitch-class JSD ↓", "instrument JSD ↓", "PC-transition rel. OA ↑",
                                   "MMR valid ↑"]
    assert [row["system"] for row in headline["rows"]] == [
        "SymphonyNet", "held-out, pitches shuffled", "3-gram note model", "training pieces (real vs real)"]
    images = re.findall(r"!\[[^]]*\]\(([^)]+)\)", markdown)
    assert len(images) == 4
    for image in images:
        assert (report["out"] / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", image


def test_json_numbers_are_the_markdown_numbers(report) -> None:
    compared = 0
    for key in ("musika", "autoencoders", "symphony"):
        for table in report["json"][key]["tables"]:
            shown = _markdown_table(report["markdown"], table["title"])
            assert list(shown) == [row["system"] for row in table["rows"]]
            for row in table["rows"]:
                assert shown[row["system"]] == [format_number(v) for v in row["values"]]
                compared += len(row["values"])
    assert compared > 60


def test_baselines_order_as_they_must(report) -> None:
    def rows(table: dict) -> dict[str, list]:
        return {row["system"]: row["values"] for row in table["rows"]}

    for table in report["json"]["autoencoders"]["tables"]:
        values = rows(table)
        for column in range(3):  # front end ≈ 0 < Griffin-Lim < random phase, on every measure
            ceiling = values["front end round trip (ceiling)"][column]
            assert ceiling < values["exact magnitude + Griffin-Lim phase (32 it.)"][column]
            assert values["exact magnitude + Griffin-Lim phase (32 it.)"][column] < values[
                "exact magnitude + random phase"][column]
            # 16 numbers per frame lose what the front end keeps (the random-phase floor is no bound on them:
            # its magnitude is exact)
            assert ceiling < values[LINEAR_CODE][column]
    symbolic = rows(report["json"]["symphony"]["tables"][0])
    # shuffling pitches inside each voice keeps every per-piece statistic and the pooled histograms exactly
    assert symbolic["held-out, pitches shuffled"][:3] == [pytest.approx(1.0, abs=1e-6), 0.0, 0.0]
    assert all(values[4] == 1.0 for values in symbolic.values())  # every set encodes to MMR
    likelihood = rows(report["json"]["symphony"]["tables"][2])
    assert likelihood["3-gram"][0] < likelihood["unigram"][0]


def test_header_names_command_models_steps_and_times(report, inputs) -> None:
    markdown, header = report["markdown"], report["json"]["header"]
    assert header["command"] == "python scripts/evaluation_report.py " + " ".join(report["arguments"])
    assert f"- command: `{header['command']}`" in markdown
    assert f"| autoencoder l1p1 | `{inputs['l1p1']}` | 6 |" in markdown
    assert f"| autoencoder l1p2 | `{inputs['l1p2']}` | 2 |" in markdown
    # the autoencoder section's run list says how each run makes its phase
    assert f"`l1p1` = `{inputs['l1p1']}` (step 6, level 1, magnitude only)" in markdown
    assert f"`l1p2` = `{inputs['l1p2']}` (step 2, level 1, own phase (shared output conv, angle))" in markdown
    assert f"| SymphonyNet | `{inputs['symphony']}` | 40 |" in markdown
    assert f"| latent GAN | `{inputs['gan']}` | n/a |" in markdown  # the debug run has no training state
    for key in ("musika", "autoencoders", "symphony"):
        section = report["json"][key]
        assert section["seconds"] > 0
        assert f"| {section['title']} | {section['seconds']:.1f} |" in markdown
        # what scripts/model_cards.py quotes in the model cards: the section's text and tables, not its pictures
        assert section["markdown"] in markdown and "![" not in section["markdown"]
        assert all(table["title"] in section["markdown"] for table in section["tables"])


def test_an_existing_report_is_kept_without_overwrite(report, capsys) -> None:
    before = (report["out"] / "evaluation.md").read_bytes()
    assert _script().main(report["arguments"]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert (report["out"] / "evaluation.md").read_bytes() == before


def test_a_used_scratch_folder_is_refused_before_the_work(inputs, tmp_path: Path, capsys) -> None:
    (tmp_path / "scratch" / "musika").mkdir(parents=True)
    code = _script().main([*_arguments(inputs, tmp_path / "docs"), "--scratch", str(tmp_path / "scratch")])
    assert code == 2 and "--scratch must be a new or empty folder" in capsys.readouterr().err
    assert not (tmp_path / "docs").exists()


def test_a_learned_embedder_without_its_weights_is_refused_before_the_work(inputs, tmp_path: Path, capsys) -> None:
    code = _script().main([*_arguments(inputs, tmp_path / "docs"), "--embedder", "vggish"])
    assert code == 2 and "needs a local weight file" in capsys.readouterr().err
    assert not (tmp_path / "docs").exists()


def test_sections_without_their_inputs_are_left_out_with_the_reason(inputs, tmp_path: Path) -> None:
    assert _script().main(["--musika-model", str(inputs["gan"]), "--symphony-model", str(inputs["symphony"]),
                           "--out", str(tmp_path)]) == 0
    markdown = (tmp_path / "evaluation.md").read_text()
    left_out = json.loads((tmp_path / "evaluation.json").read_text())["left_out"]
    assert left_out == {
        "Musika: generated audio (FAD)": "needs --train-audio and --heldout-audio",
        "Musika autoencoders: reconstruction quality": "needs at least one of --ae-train-audio, "
                                                       "--ae-heldout-audio (or --train-audio, --heldout-audio), "
                                                       "--ood-audio",
        "SymphonyNet: generated pieces": "needs --midi (the folder the run's pieces came from)",
    }
    assert markdown.count("Left out:") == 3


def test_the_autoencoder_study_reads_its_own_audio_folders(inputs, tmp_path: Path, monkeypatch) -> None:
    from orchestrion.evaluation import report as report_module

    studied = {}

    def autoencoder_section(runs, folders, **_):
        studied.update(folders)
        return report_module.Section(key="autoencoders", title="Musika autoencoders: reconstruction quality")

    monkeypatch.setattr(report_module, "autoencoder_section", autoencoder_section)
    # the FAD section keeps --train-audio/--heldout-audio; its work is not under test here
    monkeypatch.setattr(report_module, "musika_section",
                        lambda *_, **__: report_module.Section(key="musika", title="Musika: generated audio (FAD)"))
    common = ["--musika-model", str(inputs["gan"]), "--autoencoders", f"l1p1={inputs['l1p1']}",
              "--symphony-model", str(inputs["symphony"])]
    assert _script().main([*common, "--train-audio", str(inputs["train"]), "--heldout-audio", str(inputs["heldout"]),
                           "--ae-train-audio", str(inputs["ood"]), "--out", str(tmp_path / "own")]) == 0
    assert studied == {"training": inputs["ood"], "held-out": inputs["heldout"]}
    studied.clear()
    assert _script().main([*common, "--ae-heldout-audio", str(inputs["ood"]), "--out", str(tmp_path / "alone")]) == 0
    assert studied == {"held-out": inputs["ood"]}


def test_a_midi_folder_without_the_held_out_pieces_is_one_clear_error(inputs, tmp_path: Path, capsys) -> None:
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(next((inputs["midi"] / "chorales").glob("*.mid")), other / "unrelated.mid")
    code = _script().main(["--symphony-model", str(inputs["symphony"]), "--midi", str(other),
                           "--out", str(tmp_path / "docs")])
    error = capsys.readouterr().err
    assert code == 2 and "holds none of the run's" in error and "Traceback" not in error
    assert not (tmp_path / "docs" / "evaluation.md").exists()


def test_training_curves_come_from_autoencoder_runs_only(inputs, tmp_path: Path) -> None:
    from orchestrion.evaluation.report import _training_curves_png

    run = tmp_path / "l1p1"
    shutil.copytree(inputs["l1p1"], run)
    with open(run / "metrics.jsonl", "a") as handle:
        handle.write('{"step": 7, "loss": 0.')  # a line torn by an interrupted training
    gan = tmp_path / "gan"
    shutil.copytree(inputs["gan"], gan)
    (gan / "metrics.jsonl").write_text('{"step": 1, "d_loss": 1.0}\n')  # GAN losses, not the autoencoder's
    curves, missing = _training_curves_png({"l1p1": run, "gan": gan}, tmp_path / "curves.png")
    assert curves.read_bytes()[:4] == b"\x89PNG" and missing == ["gan"]
    assert _training_curves_png({"gan": gan}, tmp_path / "none.png") == (None, ["gan"])


def test_exported_models_keep_their_step_and_held_out_split(inputs, tmp_path: Path) -> None:
    from orchestrion.evaluation.report import heldout_sources, model_step
    from orchestrion.pretrained import export_model

    shipped = export_model(inputs["symphony"], tmp_path / "symphony-shipped")
    assert model_step(shipped) == model_step(inputs["symphony"]) == 40
    assert heldout_sources(shipped) == heldout_sources(inputs["symphony"])
    split = json.loads((inputs["symphony"] / "split.json").read_text())
    assert len(heldout_sources(shipped)) == len(split["valid"]) + len(split["test"]) == 4
    assert model_step(export_model(inputs["l1p1"], tmp_path / "ae-shipped")) == 6


def test_audio_excerpts_skip_short_files_and_need_one_long_enough(tmp_path: Path) -> None:
    import numpy as np

    from musika.train_support import write_music_folder
    from orchestrion.errors import DataError
    from orchestrion.evaluation.report import audio_excerpts

    write_music_folder(tmp_path / "long", n_files=1, seconds=3.0)
    write_music_folder(tmp_path / "long" / "short", n_files=1, seconds=0.5)
    from orchestrion.fileio import SkipReport

    skipped = SkipReport()
    excerpts = audio_excerpts(tmp_path / "long", 3, 1.0, np.random.default_rng(0), skipped)
    assert [len(wave) for _, wave in excerpts] == [22050] * 3
    assert len({name for name, _ in excerpts}) == 3  # three offsets of the one long file
    assert [s["reason"] for s in skipped.skipped] == ["shorter than 1 s"]
    with pytest.raises(DataError, match="no audio file of at least 5 s"):
        audio_excerpts(tmp_path / "long", 1, 5.0, np.random.default_rng(0))


def test_held_out_sources_are_found_by_path_or_unique_file_name() -> None:
    from orchestrion.evaluation.report import _match_sources

    names = ["chorales/a.mid", "chorales/b.mid", "other/b.mid", "moved/c.mid"]
    matched, missing = _match_sources(names, ["chorales/a.mid", "quartets/c.mid", "elsewhere/b.mid", "d.mid"])
    assert matched == ["chorales/a.mid", "moved/c.mid"]
    assert missing == ["elsewhere/b.mid", "d.mid"]  # b.mid is ambiguous, d.mid absent


def test_the_same_seed_gives_the_same_numbers(report, inputs, tmp_path: Path) -> None:
    from musika.gan_support import one_thread

    with one_thread():
        assert _script().main(_arguments(inputs, tmp_path)) == 0
    again = json.loads((tmp_path / "evaluation.json").read_text())
    for key in ("musika", "autoencoders", "symphony"):
        assert again[key]["tables"] == report["json"][key]["tables"], key


def test_autoencoder_excerpts_skip_near_silent_files_and_take_the_next(tmp_path: Path) -> None:
    """A near-silent track (Wesnoth ships one, `silence.ogg`, at -92 dBFS RMS) would score the front end's
    power floor, not the model: it is reported and the next file in sorted order is scored instead."""
    import numpy as np

    from orchestrion.audio.io import save_audio
    from orchestrion.evaluation.report import write_excerpts
    from orchestrion.fileio import SkipReport

    folder = tmp_path / "music"
    rng = np.random.default_rng(0)
    for name, level in (("a", 0.1), ("b", 0.1), ("c", 3e-5), ("d", 0.1), ("e", 0.1)):
        save_audio(folder / f"{name}.wav", (level * rng.standard_normal(22050)).astype(np.float32)[None])
    skipped = SkipReport()
    out = write_excerpts(folder, tmp_path / "excerpts", 3, 0.5, skipped, min_rms_db=-60.0)  # files 0, 2, 4
    assert sorted(p.name for p in out.iterdir()) == ["0000_a.wav", "0003_d.wav", "0004_e.wav"]
    assert [Path(entry["file"]).name for entry in skipped.skipped] == ["c.wav"]
    assert "quieter than -60" in skipped.skipped[0]["reason"]
    # without the threshold the quiet file is an excerpt like any other
    out = write_excerpts(folder, tmp_path / "all", 3, 0.5, SkipReport())
    assert sorted(p.name for p in out.iterdir()) == ["0000_a.wav", "0002_c.wav", "0004_e.wav"]
