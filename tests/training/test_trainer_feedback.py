"""The shared trainer tells the user what it does and survives what users do: resume point, runs already
finished, Ctrl-C, changed settings on resume, batches larger than the data, killed parents, logs to files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tiny_train
from test_trainer import SCRIPT, final_weights, make_trainer, run_script

from orchestrion.checkpoint import checkpoint_step_dirs, load_checkpoint
from orchestrion.errors import CheckpointError
from orchestrion.training import trainer as trainer_module


def _children(pid: int) -> set[int]:
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.update(int(c) for c in (task / "children").read_text().split())
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_resume_names_its_checkpoint_and_a_finished_run_says_there_is_nothing_to_do(tmp_path, capsys) -> None:
    make_trainer(tmp_path, max_steps=4).fit()
    capsys.readouterr()
    make_trainer(tmp_path, max_steps=6).fit(resume=True)
    assert f"resuming from {tmp_path / 'checkpoints' / 'step_00000004'} (step 4)" in capsys.readouterr().err
    assert make_trainer(tmp_path, max_steps=3).fit(resume=True) == {}
    err = capsys.readouterr().err
    assert "already at step 6, which reaches the 3 steps asked for; nothing to train" in err
    assert checkpoint_step_dirs(tmp_path)[-1][0] == 6


def test_resume_warns_when_the_newest_checkpoint_lacks_its_manifest(tmp_path) -> None:
    make_trainer(tmp_path, max_steps=8, checkpoint_every=2, keep_last=5).fit()
    (tmp_path / "checkpoints" / "step_00000008" / "manifest.json").unlink()  # a save killed at the wrong moment
    with pytest.warns(UserWarning, match=r"step 8 have no manifest.json \(a save that was interrupted.*using step 6"):
        trainer = make_trainer(tmp_path, max_steps=8, checkpoint_every=2)
        trainer.fit(resume=True)
    assert trainer.step == 8


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_finishes_the_step_writes_a_checkpoint_and_resumes_bit_exactly(tmp_path) -> None:
    reference = run_script(tmp_path / "uninterrupted", "--steps", "12")
    run = tmp_path / "interrupted"
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(run), "--steps", "12", "--sleep", "0.3", "--checkpoint-every", "100"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    metrics = run / "metrics.jsonl"
    while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 3):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    assert not (run / "checkpoints").exists()  # only the final step would write one
    proc.send_signal(signal.SIGINT)  # in the middle of a step (each sleeps 0.3 s)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "KeyboardInterrupt" in err
    written = checkpoint_step_dirs(run)[-1]
    assert f"interrupted at step {written[0]}: checkpoint written to {written[1]}; continue with --resume" in err
    assert 3 <= written[0] < 12 and len(checkpoint_step_dirs(run)) == 1
    assert load_checkpoint(written[1]).step == written[0]
    assert run_script(run, "--steps", "12", "--resume") == reference


def test_resume_with_other_batch_size_continues_at_the_next_unseen_sample(tmp_path) -> None:
    seen: list[int] = []

    class Recording(tiny_train.TinyData):
        def __getitem__(self, key):
            seen.append(key.seed)
            return super().__getitem__(key)

    def trainer(**overrides):
        made = make_trainer(tmp_path, **overrides)
        made.dataset = Recording()
        return made

    trainer(max_steps=4, batch_size=4).fit()
    assert len(seen) == 16
    seen.clear()
    changed = r"batch size 4 -> 2: training continues at sample 16 .* no longer bit-identical"
    with pytest.warns(UserWarning, match=changed):
        trainer(max_steps=7, batch_size=2).fit(resume=True)
    stream = trainer_module._KeyBatches(10, 1, 3, 0, 1, 0)  # the global sample stream of seed 3
    expected = [stream._item(s).seed for s in range(16, 22)]
    assert seen == expected, "samples 16..21 follow, none skipped or repeated"
    assert load_checkpoint(tmp_path).training_state()["samples_seen"] == 22


def test_resume_with_another_seed_is_refused(tmp_path) -> None:
    make_trainer(tmp_path, max_steps=2).fit()
    with pytest.raises(CheckpointError, match="trained with seed 3, not 4; resume with the same seed"):
        make_trainer(tmp_path, max_steps=4, seed=4).fit(resume=True)


def test_a_batch_larger_than_the_data_is_capped(tmp_path) -> None:
    expected = "batch size 100000 is more than the 10 samples the data holds per epoch; using 10"
    with pytest.warns(UserWarning, match=expected):
        trainer = make_trainer(tmp_path, max_steps=1, batch_size=100_000)
    assert trainer.config.batch_size == 10
    trainer.fit()
    assert load_checkpoint(tmp_path).training_state()["trainer_config"]["batch_size"] == 10


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_busy_data_workers_die_with_a_terminated_trainer(tmp_path) -> None:
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(tmp_path / "run"), "--workers", "2", "--data-sleep", "60"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    workers: set[int] = set()
    while len(workers) < 2:
        assert proc.poll() is None and time.monotonic() < deadline
        workers = _children(proc.pid)
        time.sleep(0.1)
    time.sleep(1.0)  # both are now inside a 60 s __getitem__
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 5  # PyTorch's own watchdog would only notice after the 60 s item
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = [pid for pid in workers if _alive(pid)]
    for pid in survivors:
        os.kill(pid, signal.SIGKILL)
    assert not survivors, "data workers outlived the trainer"


def test_without_a_terminal_progress_is_logged_as_lines(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(trainer_module, "PROGRESS_LINE_SECONDS", 0.0)
    monkeypatch.setattr(trainer_module, "ESTIMATE_AFTER_SECONDS", 0.0)
    make_trainer(tmp_path, max_steps=3, progress=True).fit()  # pytest's stderr is not a terminal
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in lines] == ["1/3", "2/3", "3/3"]
    assert all("loss" in line for line in lines)
    assert "steps/s: the remaining 2 steps will take about" in err
    assert "━" not in err, "no progress bar drawn into a log file"


def test_duration_format() -> None:
    fmt = trainer_module._format_duration
    assert [fmt(5), fmt(600), fmt(5 * 3600), fmt(30 * 86400)] == ["5 s", "10 min", "5.0 h", "30.0 days"]


def test_old_checkpoints_that_cannot_be_deleted_are_reported(tmp_path, monkeypatch) -> None:
    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(trainer_module.shutil, "rmtree", refuse)
    with pytest.warns(UserWarning, match=r"step_00000001: could not delete this old checkpoint \(Permission denied\)"):
        make_trainer(tmp_path, max_steps=2, checkpoint_every=1, keep_last=1).fit()
    assert [s for s, _ in checkpoint_step_dirs(tmp_path)] == [1, 2]
    np.testing.assert_array_equal(final_weights(tmp_path)["net.0.weight"].shape, (16, 8))
