import pytest
import torch

from biolord.devices import pick_device


def test_a_named_device_is_used_as_given_and_null_follows_what_is_visible(monkeypatch):
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("cuda:1") == torch.device("cuda", 1)  # named, not probed: the caller asked for it
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device(None) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device("") == torch.device("cuda")
    with pytest.raises(RuntimeError):
        pick_device("gpu")  # torch's own error names the accepted device types
