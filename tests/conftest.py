import pytest
import torch


@pytest.fixture
def generator():
    """A seeded CPU generator, so each test draws the same numbers every run."""
    return torch.Generator().manual_seed(1234)
