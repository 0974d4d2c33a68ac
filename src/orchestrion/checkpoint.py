"""The one checkpoint format: a directory of safetensors + JSON, written atomically.

Layout of a checkpoint directory::

    config.json          {"format", "format_version", "kind", "config", "modules"}
    model.safetensors    every module's state_dict, keys "<module>.<parameter>"
    state.safetensors    tensors of the training state (optimizers, RNG) — optional
    state.json           the rest of the training state; tensors appear as {"__tensor__": key}
    manifest.json        sha256 and size of each file above; written last

The directory is assembled under a temporary name and renamed into place, so a kill
at any moment leaves the previous checkpoints intact and never a half-written one.
Re-saving an existing directory swaps old and new in one atomic exchange (Linux
``renameat2``); elsewhere the old one is moved aside first and, should a kill land
between the two renames, put back by the next load or save. Temporary directories
left by a killed save are removed by the next save into the same folder. Directories
and files get the permissions the user's umask gives (not the owner-only ones of a
temporary directory).
Nothing is ever unpickled: a tampered file fails its hash, a truncated one its hash
or the safetensors header, and weights that do not fit the config are refused.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from orchestrion import __version__
from orchestrion.config import config_class, config_from_dict, config_kind, config_to_dict
from orchestrion.errors import CheckpointError, ConfigError
from orchestrion.fileio import current_umask

FORMAT = "orchestrion-checkpoint"
FORMAT_VERSION = 1
CHECKPOINTS_SUBDIR = "checkpoints"
_STEP_DIR = re.compile(r"^step_(\d{8,})$")
REQUIRED_FILES = ("config.json", "model.safetensors")
_TEMPORARY = re.compile(r"^\.(.+)\.(tmp|old)-[a-z0-9_]{8}$")  # tempfile.mkdtemp names of save_checkpoint
_RENAME_EXCHANGE = 2  # linux/fs.h


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap the directories ``a`` and ``b`` (Linux ``renameat2``); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd = -100
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    errno = ctypes.get_errno()
    if errno in (22, 38, 95):  # EINVAL/ENOSYS/EOPNOTSUPP: the file system cannot exchange
        return False
    raise OSError(errno, os.strerror(errno), str(b))


def _aside_name(ckpt_dir: Path) -> str:
    return f".{ckpt_dir.name}.old-"


def _recover_aside(ckpt_dir: Path) -> None:
    """Put back a checkpoint moved aside by a re-save that was killed before the new one was in place."""
    if ckpt_dir.exists() or not ckpt_dir.parent.is_dir():
        return
    for trash in sorted(ckpt_dir.parent.glob(_aside_name(ckpt_dir) + "*")):
        if (trash / "old" / "manifest.json").is_file():
            os.replace(trash / "old", ckpt_dir)
            warnings.warn(
                f"{ckpt_dir}: restored the checkpoint that an interrupted re-save had moved to {trash}", stacklevel=3
            )
            shutil.rmtree(trash)
            return


def _remove_stale_temporaries(folder: Path, keep: Path) -> None:
    """Remove what killed saves left in ``folder`` (``.NAME.tmp-*`` and emptied ``.NAME.old-*``)."""
    for child in folder.iterdir():
        match = _TEMPORARY.match(child.name)
        if child == keep or match is None or not child.is_dir():
            continue
        if match.group(2) == "tmp" or not (child / "old").exists():
            shutil.rmtree(child)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _flatten_state(value: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Replace tensors inside a nested structure by references into ``tensors``."""
    if isinstance(value, torch.Tensor):
        key = prefix or "root"
        tensors[key] = value.detach().cpu().contiguous().clone()
        return {"__tensor__": key}
    if isinstance(value, dict):
        return {"__dict__": [[k, _flatten_state(v, f"{prefix}/{k}", tensors)] for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        items = [_flatten_state(v, f"{prefix}/{i}", tensors) for i, v in enumerate(value)]
        return {"__tuple__": items} if isinstance(value, tuple) else items
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot store {type(value).__name__} at {prefix!r} in a checkpoint")


def _unflatten_state(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, dict):
        if "__tensor__" in value:
            return tensors[value["__tensor__"]]
        if "__tuple__" in value:
            return tuple(_unflatten_state(v, tensors) for v in value["__tuple__"])
        # keys keep their type (optimizer state is keyed by int parameter ids)
        return {k: _unflatten_state(v, tensors) for k, v in value["__dict__"]}
    if isinstance(value, list):
        return [_unflatten_state(v, tensors) for v in value]
    return value


def save_checkpoint(
    ckpt_dir: str | Path,
    *,
    config: Any,
    modules: dict[str, torch.nn.Module],
    state: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint directory atomically and return its path.

    ``config`` is a registered frozen dataclass (its kind is stored); ``modules`` maps
    names to modules whose state_dicts are saved under ``"<name>."`` prefixes;
    ``state`` is any nesting of dict/list/tuple/number/str/tensor (training state).
    """
    weights: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}
    for name, module in modules.items():
        state_dict = module.state_dict()
        counts[name] = len(state_dict)
        weights.update({f"{name}.{key}": tensor for key, tensor in state_dict.items()})
    return _write_checkpoint(ckpt_dir, config=config, weights=weights, module_counts=counts, state=state)


def export_checkpoint(
    source: Checkpoint,
    out_dir: str | Path,
    *,
    modules: Sequence[str],
    half: Sequence[str] = (),
    extra_files: dict[str, Path] | None = None,
    header: dict[str, Any] | None = None,
) -> Path:
    """A weights-only copy of ``source`` with only ``modules``, for shipping a trained model.

    Modules named in ``half`` are stored as float16 (they load back into float32 modules);
    ``extra_files`` (name -> path) are copied in and listed in the manifest, so their checksums
    are verified with the weights; ``header`` adds informative keys to ``config.json``.
    """
    weights: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}
    for name in modules:
        state = source.module_state(name)
        counts[name] = len(state)
        for key, tensor in state.items():
            if name in half and tensor.is_floating_point():
                tensor = tensor.half()
            weights[f"{name}.{key}"] = tensor
    return _write_checkpoint(
        out_dir, config=source.config, weights=weights, module_counts=counts, extra_files=extra_files, header=header
    )


def _write_checkpoint(
    ckpt_dir: str | Path,
    *,
    config: Any,
    weights: dict[str, torch.Tensor],
    module_counts: dict[str, int],
    state: dict[str, Any] | None = None,
    extra_files: dict[str, Path] | None = None,
    header: dict[str, Any] | None = None,
) -> Path:
    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.parent.mkdir(parents=True, exist_ok=True)
    _recover_aside(ckpt_dir)
    tmp = Path(tempfile.mkdtemp(dir=ckpt_dir.parent, prefix=f".{ckpt_dir.name}.tmp-"))
    _remove_stale_temporaries(ckpt_dir.parent, keep=tmp)
    os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes it owner-only; colleagues may read checkpoints
    try:
        weights = {key: tensor.detach().cpu().contiguous().clone() for key, tensor in weights.items()}
        full_header = {
            **(header or {}),
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "orchestrion_version": __version__,
            "kind": config_kind(config),
            "config": config_to_dict(config),
            "modules": module_counts,
        }
        (tmp / "config.json").write_text(json.dumps(full_header, indent=2, sort_keys=True) + "\n")
        save_file(weights, str(tmp / "model.safetensors"), metadata={"format": FORMAT})
        files = ["config.json", "model.safetensors"]
        if state is not None:
            state_tensors: dict[str, torch.Tensor] = {}
            tree = _flatten_state(state, "", state_tensors)
            save_file(state_tensors, str(tmp / "state.safetensors"), metadata={"format": FORMAT})
            (tmp / "state.json").write_text(json.dumps(tree) + "\n")
            files += ["state.safetensors", "state.json"]
        for name, path in (extra_files or {}).items():
            shutil.copyfile(path, tmp / name)
            files.append(name)
        manifest = {
            "files": {name: {"sha256": _sha256(tmp / name), "bytes": (tmp / name).stat().st_size} for name in files}
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        file_mode = 0o666 & ~current_umask()  # safetensors writes owner-only files
        for name in [*files, "manifest.json"]:
            os.chmod(tmp / name, file_mode)
            _fsync_file(tmp / name)
        _fsync_dir(tmp)
        if ckpt_dir.exists():  # re-saving the same step
            if _exchange(tmp, ckpt_dir):  # the path never lacks a complete checkpoint
                shutil.rmtree(tmp)
            else:
                trash = Path(tempfile.mkdtemp(dir=ckpt_dir.parent, prefix=_aside_name(ckpt_dir)))
                os.replace(ckpt_dir, trash / "old")
                os.replace(tmp, ckpt_dir)
                shutil.rmtree(trash)
        else:
            os.replace(tmp, ckpt_dir)
        _fsync_dir(ckpt_dir.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ckpt_dir


def checkpoint_step_dirs(run_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoint directories under ``run_dir/checkpoints``, oldest first."""
    root = Path(run_dir) / CHECKPOINTS_SUBDIR
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        match = _STEP_DIR.match(child.name)
        if match and (child / "manifest.json").is_file():
            found.append((int(match.group(1)), child))
    return sorted(found)


def latest_checkpoint(run_dir: str | Path) -> tuple[int, Path] | None:
    """The newest complete checkpoint of a run (step, path), or None.

    Newer step directories without ``manifest.json`` (a save killed at the wrong moment, a damaged
    copy) are passed over with a warning that names them and the step used instead.
    """
    root = Path(run_dir) / CHECKPOINTS_SUBDIR
    for child in root.iterdir() if root.is_dir() else ():
        if (match := _TEMPORARY.match(child.name)) and match.group(2) == "old":
            _recover_aside(root / match.group(1))
    steps = checkpoint_step_dirs(run_dir)
    newest = steps[-1] if steps else None
    incomplete = sorted(
        int(match.group(1))
        for child in (root.iterdir() if root.is_dir() else ())
        if (match := _STEP_DIR.match(child.name)) and not (child / "manifest.json").is_file()
    )
    skipped = [step for step in incomplete if newest is None or step > newest[0]]
    if skipped:
        used = f"using step {newest[0]} ({newest[1]})" if newest else "no complete checkpoint is left"
        warnings.warn(
            f"{root}: checkpoint(s) of step {', '.join(map(str, skipped))} have no manifest.json "
            f"(a save that was interrupted, or a damaged copy); {used}",
            stacklevel=2,
        )
    return newest


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory itself, or the latest complete one inside a run directory."""
    path = Path(path)
    _recover_aside(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint or run directory")
    if (path / "manifest.json").is_file():
        return path
    latest = latest_checkpoint(path)
    if latest is not None:
        return latest[1]
    if (path / "config.json").is_file():
        raise CheckpointError(f"{path}: checkpoint is incomplete (manifest.json missing)")
    raise CheckpointError(f"{path}: no checkpoint found (expected {CHECKPOINTS_SUBDIR}/step_* or manifest.json)")


def checkpoint_step(ckpt_dir: str | Path) -> int | None:
    """The training step stored in checkpoint directory ``ckpt_dir`` (None without a training state).

    Reads only ``state.json``: cheap enough to say which checkpoint a command uses.
    """
    path = Path(ckpt_dir)
    try:
        tree = json.loads((path / "state.json").read_text())
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: training state unreadable ({error})") from error
    entries = dict(tree.get("__dict__", [])) if isinstance(tree, dict) else {}
    return int(entries["step"]) if isinstance(entries.get("step"), int) else None


@dataclass
class Checkpoint:
    """A verified checkpoint: config rebuilt, weights loaded on the CPU."""

    path: Path
    kind: str
    config: Any
    weights: dict[str, torch.Tensor] = field(repr=False)
    module_names: tuple[str, ...]

    def module_state(self, name: str) -> dict[str, torch.Tensor]:
        """The state_dict saved for module ``name``."""
        if name not in self.module_names:
            raise CheckpointError(f"{self.path}: no module {name!r} (has {list(self.module_names)})")
        prefix = f"{name}."
        return {k[len(prefix) :]: v for k, v in self.weights.items() if k.startswith(prefix)}

    def load_into(self, name: str, module: torch.nn.Module) -> None:
        """Load module ``name`` strictly, with a readable error for any mismatch."""
        saved = self.module_state(name)
        expected = module.state_dict()
        missing = sorted(set(expected) - set(saved))
        unexpected = sorted(set(saved) - set(expected))
        wrong_shape = sorted(
            f"{k}: checkpoint {tuple(saved[k].shape)} vs model {tuple(v.shape)}"
            for k, v in expected.items()
            if k in saved and saved[k].shape != v.shape
        )
        problems = []
        if missing:
            problems.append(f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            problems.append(f"unexpected {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
        if wrong_shape:
            problems.append(f"shape mismatch {wrong_shape[:5]}")
        if problems:
            raise CheckpointError(
                f"{self.path}: weights of module {name!r} do not match the model built from its config ("
                + "; ".join(problems)
                + ")"
            )
        module.load_state_dict(saved, strict=True)

    @property
    def step(self) -> int | None:
        """The training step saved with the checkpoint (None without a training state); reads no tensors."""
        return checkpoint_step(self.path)

    def training_state(self) -> dict[str, Any]:
        """The training state saved with the checkpoint (optimizers, step, RNG)."""
        tensors_path = self.path / "state.safetensors"
        tree_path = self.path / "state.json"
        if not tensors_path.is_file() or not tree_path.is_file():
            raise CheckpointError(f"{self.path}: holds weights only, no training state to resume from")
        try:
            tensors = load_file(str(tensors_path))
            tree = json.loads(tree_path.read_text())
        except (SafetensorError, json.JSONDecodeError, OSError) as error:
            raise CheckpointError(f"{self.path}: training state unreadable ({error})") from error
        return _unflatten_state(tree, tensors)


def _verify_manifest(path: Path) -> None:
    try:
        manifest = json.loads((path / "manifest.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: manifest.json unreadable ({error})") from error
    if isinstance(manifest, dict) and "files" not in manifest and isinstance(manifest.get("format"), str):
        raise CheckpointError(
            f"{path}: is a {manifest['format']!r} folder, not a model checkpoint "
            "(give a run directory or a checkpoints/step_* directory)"
        )
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict):
        raise CheckpointError(f"{path}: manifest.json is not a checkpoint manifest (no 'files' table)")
    unlisted = [name for name in REQUIRED_FILES if name not in files]
    if unlisted:
        raise CheckpointError(f"{path}: manifest.json does not list {', '.join(unlisted)} (damaged or hand-made)")
    for name, entry in files.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("bytes"), int) or not isinstance(
            entry.get("sha256"), str
        ):
            raise CheckpointError(f"{path}: manifest.json entry for {name} lacks its 'bytes' or 'sha256'")
        file = path / name
        if not file.is_file():
            raise CheckpointError(f"{path}: file {name} listed in the manifest is missing")
        size = file.stat().st_size
        if size != entry["bytes"]:
            raise CheckpointError(
                f"{path}: {name} is {size} bytes, the manifest says {entry['bytes']} (truncated or replaced)"
            )
        if _sha256(file) != entry["sha256"]:
            raise CheckpointError(f"{path}: {name} does not match its sha256 in the manifest (modified)")


def load_checkpoint(path: str | Path, expected_kind: str | None = None) -> Checkpoint:
    """Open a checkpoint dir (or a run dir's latest checkpoint) after verifying it.

    Raises :class:`CheckpointError` for a missing, truncated, tampered or foreign
    checkpoint, or one of another kind than ``expected_kind``.
    """
    path = resolve_checkpoint(path)
    _verify_manifest(path)
    try:
        header = json.loads((path / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: config.json unreadable ({error})") from error
    if header.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an orchestrion checkpoint")
    if header.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {header.get('format_version')} is not supported "
            f"(this orchestrion reads version {FORMAT_VERSION})"
        )
    kind = header["kind"]
    if expected_kind is not None and kind != expected_kind:
        raise CheckpointError(f"{path}: holds a {kind!r} model, expected {expected_kind!r}")
    try:
        config = config_from_dict(config_class(kind), header["config"])
    except ConfigError as error:
        raise CheckpointError(f"{path}: config.json does not describe a valid model: {error}") from error
    try:
        weights = load_file(str(path / "model.safetensors"))
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{path}: model.safetensors unreadable ({error})") from error
    names = tuple(header.get("modules", {}))
    return Checkpoint(path=path, kind=kind, config=config, weights=weights, module_names=names)
