"""Fixtures of the flash_attn tests (helpers live in fa_support.py).

Run from tests/python (not the repository root) so that `import flash_attn` finds the
installed package rather than the source tree.
"""
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))  # oracle.py, checks.py, fa_support.py


@pytest.fixture(autouse=True)
def _seed_and_backend(monkeypatch):
    torch.manual_seed(0)
    monkeypatch.delenv("FLASHPLUS_BACKEND", raising=False)
