"""The inputs folder of the bad-input suite, built once per module (see ``reliability_inputs``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from reliability_inputs import write_inputs


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of bad (and a few good) inputs, built once per module."""
    return write_inputs(tmp_path_factory.mktemp("inputs"))
