"""The tables behind the book, written as CSV files the pages link to (``book/data/``).

- ``results.csv``: the tidy results of every chapter's sweep, one row per checkpoint x spec x
  fine-tune x metric (a job is evaluated from one seed, so each row is one measured value), with
  the training seed and the provenance of the job that measured it (commit, CPU model and vector
  extensions, library versions).
- ``verdicts.csv``: one row per claim, environment and measure
  (:data:`rlcomp.analysis.verdict_table.VERDICT_COLUMNS`).
- ``frontier.csv``: chapter 06's smallest model per environment and method family that keeps 95%
  of the dense agent's normalized return (:data:`rlcomp.analysis.frontier.FRONTIER_COLUMNS`),
  written with :func:`csv_bytes` by :func:`rlcomp.analysis.frontier.write_frontier`.

Files are written whole or not at all (:func:`rlcomp.files.atomic_write`), with rows in a fixed
order and floats in ``repr`` form, so the same results give the same bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from rlcomp.analysis.verdict_table import Verdict, verdicts_frame
from rlcomp.experiments.store import ResultStore
from rlcomp.files import atomic_write

RESULT_COLUMNS = ("checkpoint", "env", "algo", "train_seed", "spec", "method", "level",
                  "finetuned", "finetune", "eval_seed", "metric", "value")
"""The measured columns of ``results.csv``, before the provenance columns."""

PROVENANCE_COLUMNS = ("git_commit", "cpu_model", "vector_extensions", "torch", "numpy",
                      "gymnasium", "mujoco")
"""The provenance columns of ``results.csv`` (from each job's recorded provenance)."""


def _provenance_row(extra: dict) -> dict[str, str]:
    prov = extra.get("provenance") or {}
    machine = prov.get("machine") or {}
    versions = machine.get("libraries") or machine.get("versions") or {}
    extensions = machine.get("vector_extensions") or []
    return {"git_commit": str(prov.get("git_commit", "")),
            "cpu_model": str(machine.get("cpu_model", "")),
            "vector_extensions": " ".join(extensions) if isinstance(extensions, list)
            else str(extensions),
            **{name: str(versions.get(name, "")) for name in ("torch", "numpy", "gymnasium",
                                                               "mujoco")}}


def results_table(frames: Mapping[str, pd.DataFrame], store: ResultStore) -> pd.DataFrame:
    """Every chapter's tidy rows once (a job shared by chapters appears once), with provenance.

    Args:
        frames: each chapter's tidy frame (``ChapterResults.frame``).
        store: the store the frames came from (for each job's provenance).
    """
    frame = pd.concat(list(frames.values()), ignore_index=True) if frames else pd.DataFrame(
        columns=[*RESULT_COLUMNS, "key"])
    frame = frame.drop_duplicates(subset=["key", "metric"])
    provenance = {key: _provenance_row(store.extra(key)) for key in frame["key"].unique()}
    extra = pd.DataFrame.from_dict(provenance, orient="index",
                                   columns=list(PROVENANCE_COLUMNS))
    table = frame[[*RESULT_COLUMNS, "key"]].join(extra, on="key")
    table = table.sort_values(["env", "checkpoint", "spec", "finetune", "eval_seed", "metric"],
                              kind="stable")
    return table[[*RESULT_COLUMNS, *PROVENANCE_COLUMNS]].reset_index(drop=True)


def _float_text(value: float) -> str:
    """The shortest text that reads back as the same float (``repr`` of a Python float)."""
    return repr(float(value))


def csv_bytes(table: pd.DataFrame) -> bytes:
    """``table`` as CSV bytes: no index, floats as :func:`_float_text`, Unix line ends."""
    return table.to_csv(index=False, float_format=_float_text, lineterminator="\n").encode()


def write_book_data(frames: Mapping[str, pd.DataFrame], store: ResultStore,
                    verdicts: list[Verdict], out_dir: str | Path) -> dict[str, Path]:
    """Write ``results.csv`` and ``verdicts.csv`` into ``out_dir`` (created if missing).

    Returns:
        The path of each file written, by name.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"results.csv": csv_bytes(results_table(frames, store)),
             "verdicts.csv": csv_bytes(verdicts_frame(verdicts))}
    written = {}
    for name, blob in files.items():
        atomic_write(out / name, blob)
        written[name] = out / name
    return written
