"""`orchestrion studio`: its help documents the limits, it needs gradio, and it starts without models."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cli_support import run_fails, run_ok
from orchestrion.errors import MidiError
from orchestrion.studio import limits


def test_help_documents_every_limit() -> None:
    text = " ".join(run_ok("studio", "--help").split())
    assert "Example:" in text and "--musika-model" in text and "--symphony-model" in text
    for number in (f"{limits.MAX_UPLOAD_MEGABYTES} MB", f"{limits.MAX_UPLOAD_AUDIO_SECONDS:g} s",
                   f"{limits.MAX_GENERATION_SECONDS:g} s", f"{limits.MAX_STREAM_SECONDS / 60:g} min",
                   f"{limits.MAX_GENERATED_BARS} new bars", f"{limits.MAX_MIDI_NOTES:,} notes",
                   f"{limits.MAX_PARALLEL_JOBS} requests of each kind at once",
                   f"results are kept for {limits.KEEP_FILES_SECONDS / 60:g} min"):
        assert number in text, number


def test_without_gradio_the_command_says_how_to_install_it(capsys, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "gradio", None)  # makes `import gradio` fail like a missing package
    assert run_fails(capsys, "studio") == ("error: the studio needs gradio: pip install 'gradio>=6.0' "
                                            "(or orchestrion with its studio extra)")


def test_the_page_builds_without_models_and_each_tab_says_why(tmp_path: Path) -> None:
    pytest.importorskip("gradio")
    from orchestrion.studio.app import StudioSettings, build_app
    from orchestrion.studio.models import ModelDefault

    missing = "no bundled {} model in this install; start the studio with --{}-model RUN_DIR"
    settings = StudioSettings(ModelDefault("musika", None, missing.format("musika", "musika")),
                              ModelDefault("symphony", None, missing.format("symphony", "symphony")), tmp_path)
    demo = build_app(settings)
    by_id = {block.elem_id: block for block in demo.blocks.values() if getattr(block, "elem_id", None)}
    for note, family in (("musika-model-note", "musika"), ("symphony-model-note", "symphony"),
                         ("reconstruct-model-note", "musika")):
        assert by_id[note].value == f"**Error:** {missing.format(family, family)}"
    assert by_id["musika-model"].value == "" and by_id["symphony-model"].value == ""


def test_unexpected_errors_become_a_line_in_the_page_and_tabs_keep_their_own_streams(tmp_path: Path) -> None:
    pytest.importorskip("gradio")
    from orchestrion.studio.app import Sessions, _guarded, error_message

    @_guarded(3)
    def broken(value):
        raise ValueError(f"cannot use {value}")

    assert broken(7) == (None, None, "**Error:** internal error (ValueError: cannot use 7); the server log has "
                                     "the details")
    assert error_message(MidiError("a.mid: corrupt")) == "**Error:** a.mid: corrupt"

    class Stream:
        stopped = False

        def stop(self) -> None:
            self.stopped = True

    sessions, one, two, again = Sessions(), Stream(), Stream(), Stream()
    sessions.start("tab-1", one)
    sessions.start("tab-2", two)
    sessions.start("tab-1", again)  # Play again in tab 1 replaces only tab 1's stream
    assert one.stopped and not two.stopped and sessions.get("tab-1") is again
    sessions.end("tab-2")  # tab 2 closed
    assert two.stopped and sessions.get("tab-2") is None and not again.stopped
