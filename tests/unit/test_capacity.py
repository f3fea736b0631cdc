"""What an agent offers: GPUs from nvidia-smi (a stand-in script on PATH here), named
resources and groups from its config."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.config import NodeConfig, load
from common.errors import ConfigError
from common.resources import Resources
from computenode import capacity


def fake_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, output: str, status: int = 0) -> None:
    tool = tmp_path / "nvidia-smi"
    tool.write_text(f"#!/bin/sh\nprintf '{output}'\nexit {status}\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")


def test_gpus_are_detected_with_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_nvidia_smi(tmp_path, monkeypatch, "0\\n1\\n3\\n")
    assert capacity.detect_gpus() == ["0", "1", "3"]
    assert capacity.detect().get("gpu") == 3
    assert capacity.gpu_devices(NodeConfig(), 3) == ["0", "1", "3"]


def test_no_or_failing_nvidia_smi_means_no_gpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert capacity.detect_gpus() == []
    fake_nvidia_smi(tmp_path, monkeypatch, "NVIDIA-SMI has failed\\n", status=9)
    assert capacity.detect_gpus() == []


def test_declared_resources_override_detection_and_devices_default_to_a_range(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    config = NodeConfig(cores=3, resources=("gpu=2", "license_matlab=4"))
    offered = capacity.offered(config, Resources(8, 1024, (("gpu", 1),)))
    assert offered == Resources(3, 1024, (("gpu", 2), ("license_matlab", 4)))
    assert capacity.gpu_devices(config, 2) == ["0", "1"]
    assert capacity.gpu_devices(NodeConfig(gpu_devices=("7", "5")), 2) == ["7", "5"]


def test_node_config_checks_resources_groups_and_labels(tmp_path: Path) -> None:
    path = tmp_path / "shoal.toml"
    path.write_text('[node]\nresources = ["gpu=2"]\ngroups = ["gpu", "bigmem"]\nlabels = "avx512,rack=3"\n')
    config = load(NodeConfig, "node", path, {"plaintext": True})
    assert config.groups == ("gpu", "bigmem") and config.labels == ("avx512", "rack=3")
    for text, message in (('resources = ["gpu"]', "is not NAME=COUNT"), ('resources = ["GPU=1"]', "lower case"),
                          ('groups = ["a b"]', "no spaces"), ("labels = 3", "not a valid list of strings")):
        path.write_text(f"[node]\n{text}\n")
        with pytest.raises(ConfigError, match=message):
            load(NodeConfig, "node", path, {"plaintext": True})
