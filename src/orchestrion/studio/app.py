"""The studio's web page: three tabs over :mod:`orchestrion.studio.jobs` and :mod:`.streaming`.

Nothing here decides anything about music; handlers turn page values into a request, call the
plain functions and put their files and messages on the page. Every handler catches every
error: a user's mistake becomes a red line in the tab, anything else a line saying the server
log has the details; the server never goes down for an input.

Per-tab state (the running stream that the sliders steer) is keyed by gradio's session hash,
which differs for every page load, so two browser tabs never share a stream or a file.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from orchestrion.audio.spectral import SAMPLE_RATE
from orchestrion.errors import OrchestrionError
from orchestrion.studio import jobs
from orchestrion.studio.limits import (
    KEEP_FILES_SECONDS,
    MAX_GENERATED_BARS,
    MAX_GENERATION_SECONDS,
    MAX_PARALLEL_JOBS,
    MAX_STREAM_SECONDS,
    MAX_UPLOAD_MEGABYTES,
    limits_text,
)
from orchestrion.studio.models import ModelCache, ModelDefault, chosen_folder
from orchestrion.studio.streaming import LiveStream, require_stream_encoder, wav_chunk

log = logging.getLogger("orchestrion.studio")

DEFAULT_BPM = 120.0
BPM_SLIDER = (60.0, 200.0)  # the default tempo range of conditional models (spec musika.md §8)


@dataclass(frozen=True)
class StudioSettings:
    """What the server was started with: default models, where request folders go, the torch device."""

    musika: ModelDefault
    symphony: ModelDefault
    workspace: Path
    device: str = "cpu"


def error_message(error: BaseException) -> str:
    """The line a tab shows for a failed request."""
    if isinstance(error, OrchestrionError):
        return f"**Error:** {error}"
    log.exception("studio request failed", exc_info=error)
    return f"**Error:** internal error ({type(error).__name__}: {error}); the server log has the details"


def ok_message(text: str) -> str:
    return f"**Done:** {text}"


def _guarded(outputs: int) -> Callable:
    """Wrap a handler whose last output is the status line: any error fills the others with None."""

    def wrap(handler: Callable) -> Callable:
        @functools.wraps(handler)
        def run(*args, **kwargs):
            try:
                return handler(*args, **kwargs)
            except Exception as error:  # the server must answer every input with a message, never die
                return (*([None] * (outputs - 1)), error_message(error))

        return run

    return wrap


class Sessions:
    """The live stream of each browser tab, by gradio session hash (thread-safe)."""

    def __init__(self) -> None:
        self._streams: dict[str, LiveStream] = {}
        self._lock = threading.Lock()

    def start(self, key: str, stream: LiveStream) -> None:
        with self._lock:
            old = self._streams.get(key)
            self._streams[key] = stream
        if old is not None:
            old.stop()

    def get(self, key: str) -> LiveStream | None:
        with self._lock:
            return self._streams.get(key)

    def end(self, key: str) -> None:
        with self._lock:
            stream = self._streams.pop(key, None)
        if stream is not None:
            stream.stop()


def _instrument_choices() -> list[str]:
    from orchestrion.symphony.generate import instrument_names

    return [name.title() for name in instrument_names()]


def _model_note(default: ModelDefault) -> str:
    if default.path is None:
        return f"**Error:** {default.problem}"
    return f"Default model: `{default.path}`. Type another run directory to use it instead."


def build_app(settings: StudioSettings, cache: ModelCache | None = None):
    """The gradio Blocks of the studio (not launched)."""
    cache = cache or ModelCache(settings.device)
    sessions = Sessions()
    workspace = settings.workspace

    # -- Endless audio ---------------------------------------------------------------------------

    def play(model_text, seed, endless, seconds, density, tempo, request: gr.Request):
        try:
            require_stream_encoder()
            gan = cache.latent_gan(chosen_folder(model_text, settings.musika))
            live = LiveStream(gan, jobs.new_job_folder(workspace, "musika"), seed=jobs.whole_number(seed, "seed"),
                              seconds=None if endless else jobs.whole_number(seconds, "length", 1),
                              note_density=density, tempo=tempo)
        except Exception as error:
            yield None, None, None, error_message(error)
            return
        sessions.start(request.session_hash, live)
        steering = "" if gan.config.conditions else " (this model has no conditions: the sliders do nothing)"
        try:
            for block in live.blocks():
                played = live.samples_sent / SAMPLE_RATE
                yield wav_chunk(block), gr.skip(), gr.skip(), f"Streaming seed {live.seed}: {played:.1f} s{steering}"
        except Exception as error:
            yield None, None, None, error_message(error)
            return
        how = "stopped" if live.stopped else "finished"
        yield (gr.skip(), str(live.wav_path), str(live.png_path),
               ok_message(f"{how} after {live.samples_sent / SAMPLE_RATE:.1f} s, seed {live.seed} "
                          f"(first block ready {live.first_block_seconds:.2f} s after the model)"))

    def steer(density, tempo, request: gr.Request):
        live = sessions.get(request.session_hash)
        if live is None or live.stopped:
            return ""
        try:
            live.set_conditions(note_density=density, tempo=tempo)
        except Exception as error:
            return error_message(error)
        return f"Note density {density:.2f}, tempo {tempo:.0f} BPM from the next block"

    def stop(request: gr.Request):
        live = sessions.get(request.session_hash)
        if live is not None:
            live.stop()

    # -- Symbolic --------------------------------------------------------------------------------

    @_guarded(5)
    def compose(model_text, bars, seed, temperature, top_p, instruments, prompt, prompt_bars,
                progress=gr.Progress()):
        trained = cache.symphony(chosen_folder(model_text, settings.symphony))
        request = jobs.SymbolicRequest(
            bars=jobs.whole_number(bars, "bars", 1), seed=jobs.whole_number(seed, "seed"),
            temperature=float(temperature), top_p=float(top_p), instruments=tuple(instruments or ()),
            prompt=Path(prompt) if prompt else None,
            prompt_bars=None if prompt_bars is None else jobs.whole_number(prompt_bars, "prompt bars") or None,
        )
        result = jobs.generate_symbolic(trained, request, jobs.new_job_folder(workspace, "symphony"),
                                        progress=lambda steps: progress((steps, None), desc="steps sampled"))
        return (str(result.pianoroll), str(result.audio), str(result.midi), result.table,
                ok_message(result.message))

    @_guarded(7)
    def orchestrate(model_text, upload, seed, keep_drums, instruments):
        trained = cache.symphony(chosen_folder(model_text, settings.symphony))
        result = jobs.orchestrate_upload(trained, upload, jobs.new_job_folder(workspace, "orchestrate"),
                                         seed=jobs.whole_number(seed, "seed"), keep_drums=bool(keep_drums),
                                         instruments=tuple(instruments or ()))
        return (str(result.original_audio), str(result.original_pianoroll), str(result.audio),
                str(result.pianoroll), str(result.midi), result.table, ok_message(result.message))

    # -- Reconstruction --------------------------------------------------------------------------

    @_guarded(4)
    def rebuild(model_text, upload):
        autoencoder = cache.autoencoder(chosen_folder(model_text, settings.musika))
        result = jobs.reconstruct_upload(autoencoder, upload, jobs.new_job_folder(workspace, "reconstruct"))
        return str(result.original), str(result.reconstruction), str(result.spectrograms), ok_message(result.message)

    # gradio's copies of returned files: checked every 10 minutes, deleted when older than the limit
    with gr.Blocks(title="orchestrion studio", analytics_enabled=False,
                   delete_cache=(600, KEEP_FILES_SECONDS)) as demo:
        gr.Markdown("# orchestrion studio\nMusika audio, SymphonyNet scores and the Musika autoencoder, "
                    "on this machine.")
        with gr.Tab("Endless audio", elem_id="tab-musika"):
            musika_model = gr.Textbox(settings.musika.field_text, label="Musika model (latent-GAN run directory)",
                                      elem_id="musika-model")
            gr.Markdown(_model_note(settings.musika), elem_id="musika-model-note")
            with gr.Row():
                seed = gr.Number(0, label="Seed", precision=0, minimum=0, elem_id="musika-seed")
                endless = gr.Checkbox(True, label=f"Endless (stops after {MAX_STREAM_SECONDS / 60:g} min)",
                                      elem_id="musika-endless")
                seconds = gr.Slider(1, MAX_GENERATION_SECONDS, 30, step=1, label="Length (s) when not endless",
                                    elem_id="musika-seconds")
            with gr.Row():
                density = gr.Slider(0.0, 1.0, 0.5, step=0.01, label="Note density (acts while streaming)",
                                    elem_id="musika-density")
                tempo = gr.Slider(*BPM_SLIDER, DEFAULT_BPM, step=1, label="Tempo, BPM (acts while streaming)",
                                  elem_id="musika-tempo")
            with gr.Row():
                play_button = gr.Button("Play", variant="primary", elem_id="musika-play")
                stop_button = gr.Button("Stop", elem_id="musika-stop")
            audio = gr.Audio(label="Stream", streaming=True, autoplay=True, elem_id="musika-audio")
            control = gr.Markdown(elem_id="musika-control")
            with gr.Row():
                download = gr.File(label="Download (WAV, 22.05 kHz stereo)", elem_id="musika-download")
                spectrogram = gr.Image(label="Spectrogram", type="filepath", elem_id="musika-spectrogram")
            musika_status = gr.Markdown(elem_id="musika-status")
            play_button.click(play, [musika_model, seed, endless, seconds, density, tempo],
                              [audio, download, spectrogram, musika_status], concurrency_limit=MAX_PARALLEL_JOBS)
            for slider in (density, tempo):
                slider.change(steer, [density, tempo], control, concurrency_limit=None, trigger_mode="always_last",
                              show_progress="hidden")
            stop_button.click(stop, None, None, concurrency_limit=None)

        with gr.Tab("Symbolic", elem_id="tab-symphony"):
            symphony_model = gr.Textbox(settings.symphony.field_text, label="SymphonyNet model (run directory)",
                                        elem_id="symphony-model")
            gr.Markdown(_model_note(settings.symphony), elem_id="symphony-model-note")
            instruments_choice = _instrument_choices()
            gr.Markdown("## Generate or continue")
            with gr.Row():
                bars = gr.Slider(1, MAX_GENERATED_BARS, 8, step=1, label="New bars", elem_id="symphony-bars")
                sym_seed = gr.Number(0, label="Seed", precision=0, minimum=0, elem_id="symphony-seed")
                temperature = gr.Slider(0.1, 2.0, 1.0, step=0.05, label="Temperature")
                top_p = gr.Slider(0.05, 1.0, 1.0, step=0.05, label="Top-p")
            with gr.Row():
                instruments = gr.Dropdown(instruments_choice, multiselect=True, label="Instruments (empty: any)",
                                          elem_id="symphony-instruments")
                prompt = gr.File(label="MIDI to continue (optional)", type="filepath", elem_id="symphony-prompt")
                prompt_bars = gr.Number(0, label="Prompt bars (0: all)", precision=0, minimum=0)
            compose_button = gr.Button("Generate", variant="primary", elem_id="symphony-generate")
            with gr.Row():
                pianoroll = gr.Image(label="Piano roll", type="filepath", elem_id="symphony-pianoroll")
                with gr.Column():
                    rendering = gr.Audio(label="Soundfont rendering", type="filepath", elem_id="symphony-audio")
                    midi_file = gr.File(label="MIDI", elem_id="symphony-midi")
            assignments = gr.Dataframe(headers=["track", "instrument", "probability", "notes", "from"],
                                       label="Instruments", interactive=False)
            symphony_status = gr.Markdown(elem_id="symphony-status")
            compose_button.click(compose, [symphony_model, bars, sym_seed, temperature, top_p, instruments, prompt,
                                           prompt_bars],
                                 [pianoroll, rendering, midi_file, assignments, symphony_status])

            gr.Markdown("## Orchestrate a MIDI file")
            with gr.Row():
                to_orchestrate = gr.File(label="MIDI to orchestrate", type="filepath", elem_id="orchestrate-upload")
                orch_seed = gr.Number(0, label="Seed", precision=0, minimum=0)
                keep_drums = gr.Checkbox(True, label="Keep drums")
                orch_instruments = gr.Dropdown(instruments_choice, multiselect=True, label="Instruments (empty: any)")
            orchestrate_button = gr.Button("Orchestrate", variant="primary", elem_id="orchestrate-run")
            with gr.Row():
                with gr.Column():
                    original_audio = gr.Audio(label="Original", type="filepath", elem_id="orchestrate-original-audio")
                    original_roll = gr.Image(label="Original piano roll", type="filepath")
                with gr.Column():
                    orchestrated_audio = gr.Audio(label="Orchestrated", type="filepath", elem_id="orchestrate-audio")
                    orchestrated_roll = gr.Image(label="Orchestrated piano roll", type="filepath",
                                                 elem_id="orchestrate-pianoroll")
            orchestrated_midi = gr.File(label="Orchestrated MIDI", elem_id="orchestrate-midi")
            orchestration = gr.Dataframe(headers=["track", "name", "notes", "was", "now", "probability"],
                                         label="Tracks", interactive=False)
            orchestrate_status = gr.Markdown(elem_id="orchestrate-status")
            orchestrate_button.click(orchestrate, [symphony_model, to_orchestrate, orch_seed, keep_drums,
                                                   orch_instruments],
                                     [original_audio, original_roll, orchestrated_audio, orchestrated_roll,
                                      orchestrated_midi, orchestration, orchestrate_status])

        with gr.Tab("Reconstruction", elem_id="tab-reconstruct"):
            ae_model = gr.Textbox(settings.musika.field_text,
                                  label="Musika autoencoder (an autoencoder run, or a latent-GAN run: its autoencoder)",
                                  elem_id="reconstruct-model")
            gr.Markdown(_model_note(settings.musika), elem_id="reconstruct-model-note")
            to_rebuild = gr.File(label=f"Audio to reconstruct (up to {MAX_UPLOAD_MEGABYTES} MB)", type="filepath",
                                 elem_id="reconstruct-upload")
            rebuild_button = gr.Button("Reconstruct", variant="primary", elem_id="reconstruct-run")
            with gr.Row():
                heard = gr.Audio(label="Original (22.05 kHz)", type="filepath", elem_id="reconstruct-original")
                rebuilt = gr.Audio(label="Reconstruction", type="filepath", elem_id="reconstruct-audio")
            comparison = gr.Image(label="Spectrograms", type="filepath", elem_id="reconstruct-spectrograms")
            reconstruct_status = gr.Markdown(elem_id="reconstruct-status")
            rebuild_button.click(rebuild, [ae_model, to_rebuild], [heard, rebuilt, comparison, reconstruct_status])

        gr.Markdown(f"Limits: {limits_text()}.")

        def closed(request: gr.Request) -> None:
            sessions.end(request.session_hash)  # a closed tab ends its stream

        demo.unload(closed)
    return demo


def launch(settings: StudioSettings, host: str = "127.0.0.1", port: int = 7860) -> None:
    """Serve the studio until interrupted (blocks)."""
    demo = build_app(settings)
    demo.queue(default_concurrency_limit=MAX_PARALLEL_JOBS)
    theme = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
    demo.launch(server_name=host, server_port=port, share=False, inbrowser=False, show_error=False, theme=theme,
                max_file_size=f"{MAX_UPLOAD_MEGABYTES}mb", allowed_paths=[str(settings.workspace)])
