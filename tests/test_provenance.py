"""Provenance names the machine well enough to tell which CPU path made a number."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import pytest
import torch

from rlcomp import provenance as prov
from rlcomp.experiments import jobs


def cpu_flags() -> set[str]:
    text = Path("/proc/cpuinfo").read_text()
    line = next(x for x in text.splitlines() if x.startswith("flags"))
    return set(line.partition(":")[2].split())


def test_machine_names_cpu_vector_extensions_cores_and_libraries():
    m = prov.machine()
    assert m["cpu_model"] and isinstance(m["cpu_model"], str)
    assert m["cpu_vendor"] in ("GenuineIntel", "AuthenticAMD", None)
    assert set(m["vector_extensions"]) == set(prov.VECTOR_FLAGS) & cpu_flags()
    assert m["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert m["cores"] >= 1 and 1 <= m["cores_available"] <= m["cores"]
    for name in ("torch", "numpy", "gymnasium", "mujoco", "box2d"):
        assert m["libraries"][name] == metadata.version(name)
    json.dumps(m)  # stored as JSON everywhere


def test_provenance_carries_the_machine_and_the_command():
    p = prov.provenance(["rlcomp", "train"])
    assert p["command"] == ["rlcomp", "train"]
    assert p["machine"] == prov.machine()
    assert p["git_commit"] is None or len(p["git_commit"].split("-")[0]) == 40


def test_store_rows_record_the_machine():
    """A job's provenance (stored in each row's ``extra``) is the same full record."""
    assert jobs._provenance()["machine"]["cpu_model"] == prov.machine()["cpu_model"]


@pytest.mark.parametrize("field", ["cpu_model", "vector_extensions", "libraries", "cores"])
def test_chapter_metadata_records_the_machine(field):
    from rlcomp import chapters

    meta = chapters.provenance("00-setup", "smoke", {}, ["python", "-m", "rlcomp.chapters"])
    assert meta["machine"][field] == prov.machine()[field]
