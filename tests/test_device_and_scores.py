"""The one device rule and the one z-score every stage shares (mathcore.device, mathcore.scores)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from mathcore import device
from mathcore.device import resolve_device
from mathcore.scores import zscores


def test_zscores_are_the_population_z_scores():
    v = np.array([3.0, 1.0, 4.0, 1.0, 5.0])
    assert np.array_equal(zscores(v), (v - v.mean()) / v.std())
    assert zscores([2.0, 2.0]).tolist() == [0.0, 0.0]  # constant: all 0, no division
    assert zscores([7.0]).tolist() == [0.0]
    assert zscores([]).shape == (0,)  # empty: empty, no warning


def test_zscores_over_a_reference_put_deeper_values_on_its_scale():
    top, deeper = np.array([5.0, 3.0, 1.0]), np.array([5.0, 3.0, 1.0, 0.5, -2.0])
    assert np.array_equal(zscores(deeper, over=top), (deeper - top.mean()) / top.std())
    assert zscores(deeper, over=[1.0, 1.0]).tolist() == [0.0] * 5


def test_device_names_are_checked_and_cpu_needs_no_torch(monkeypatch):
    monkeypatch.setattr(device, "cuda_available", lambda: pytest.fail("cpu asked about CUDA"))
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="device must be one of"):
        resolve_device("tpu")
    with pytest.raises(ValueError, match="cuda:N"):
        resolve_device("gpu", numbered=True)
    with pytest.raises(ValueError, match="device must be one of"):
        resolve_device("cuda:1")  # only callers that place work on one GPU of several


def test_auto_falls_back_to_cpu_with_a_log_line_and_explicit_cuda_is_an_error(monkeypatch,
                                                                               caplog):
    monkeypatch.setattr(device, "cuda_available", lambda: False)
    monkeypatch.setattr(device, "_SAID_NO_CUDA", [])  # said once a process
    with caplog.at_level(logging.INFO, logger="mathcore.device"):
        assert resolve_device("auto", purpose="encoding") == "cpu"
    assert [r.getMessage() for r in caplog.records] == [
        "device 'auto': CUDA is not available, encoding on the CPU"]
    for name in ("cuda", "cuda:0"):
        with pytest.raises(RuntimeError, match="CUDA is not available.*--device cpu or auto"):
            resolve_device(name, numbered=True)
    monkeypatch.setattr(device, "cuda_available", lambda: True)
    assert resolve_device("auto") == "cuda" and resolve_device("cuda:1", numbered=True) == "cuda:1"
