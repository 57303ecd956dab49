"""Re-measure every verdict from an empty store and diff it against the committed table.

``make verdicts-check`` runs::

    python -m rlcomp.verdicts_check [--profile full] [--store PATH] [--workers N]
                                    [--against book/data/verdicts.csv] [--out FILE]

It runs the sweeps of every chapter with claims (the measurement part of the book) into a fresh,
empty results store (a temporary one unless ``--store`` names a file that does not exist yet),
measures every claim on every environment (:func:`rlcomp.analysis.verdict_table.all_claims`) and
prints one line per claim, environment and measure: the committed verdict, the new one, and both
estimates, with ``CHANGED`` where the verdict differs. The last line says how many changed. An
environment-dominated measure's verdict is ``not judged`` on every run; its line also shows the
rule's reading on both runs (column ``reading``), which may move with the machine and does not
count as a change.

Exit codes: 0 when no verdict changed, 1 when some did (or a row is missing on either side), 2
for a mistake in the request (an existing ``--store``, a missing committed table).

With ``RLCOMP_PERTURB_OBS`` set (see :mod:`rlcomp.envs`), the sweeps simulate another CPU's
last-bit differences on the chaotic environments: the verdicts must not move either.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from rlcomp.analysis.book_data import csv_bytes
from rlcomp.analysis.verdict_table import ENTRIES, VERDICT_COLUMNS, all_claims, verdicts_frame
from rlcomp.experiments.plans import (
    BOOK_DATA,
    POSTER_CHAPTERS,
    PROFILE_SETTINGS,
    chapter_results,
)
from rlcomp.files import atomic_write

KEYS = ["claim", "env", "measure"]
"""The columns that identify a row of the verdict table."""

EXIT_CHANGED = 1
EXIT_USAGE = 2


def measure_verdicts(profile: str, store: str | Path, workers: int | None = None) -> pd.DataFrame:
    """The sweeps of the chapters the verdicts read, run into ``store``, and the verdict table.

    Chapters without claims (the measurements beyond the poster) are not run.
    """
    claimed = {entry.chapter for entry in ENTRIES}
    frames = {chapter: chapter_results(chapter, profile, store=str(store),
                                       workers=workers).frame
              for chapter in POSTER_CHAPTERS if chapter in claimed}
    return verdicts_frame(all_claims(frames))


def verdict_diff(committed: pd.DataFrame, measured: pd.DataFrame) -> pd.DataFrame:
    """Committed and measured rows side by side, with ``changed`` where the verdicts differ.

    A row present on one side only counts as changed.

    Raises:
        ValueError: if a side has two rows with the same claim, environment and measure.
    """
    for name, side in (("committed", committed), ("measured", measured)):
        if side.duplicated(KEYS).any():
            raise ValueError(f"the {name} table has repeated (claim, env, measure) rows")
    both = committed[[*KEYS, "estimate", "verdict", "reading"]].merge(
        measured[[*KEYS, "estimate", "verdict", "reading"]], on=KEYS, how="outer",
        suffixes=("_committed", "_measured"), indicator=True)
    both["changed"] = (both["_merge"] != "both") | (both["verdict_committed"]
                                                    != both["verdict_measured"])
    return both.drop(columns="_merge")


def _line(row: pd.Series) -> str:
    flag = "CHANGED " if row["changed"] else "same    "
    old = "(absent)" if pd.isna(row["verdict_committed"]) else row["verdict_committed"]
    new = "(absent)" if pd.isna(row["verdict_measured"]) else row["verdict_measured"]
    readings = ""
    if row["reading_committed"] != row["verdict_committed"] or (row["reading_measured"]
                                                                != row["verdict_measured"]):
        readings = f"; reading {row['reading_committed']} -> {row['reading_measured']}"
    return (f"{flag}{row['claim']} | {row['env']} | {row['measure']}: {old} -> {new} "
            f"(estimate {row['estimate_committed']:.4g} -> {row['estimate_measured']:.4g}"
            f"{readings})")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rlcomp.verdicts_check",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="full", choices=sorted(PROFILE_SETTINGS))
    parser.add_argument("--store", help="a new results store to fill (default: a temporary one)")
    parser.add_argument("--workers", type=int, default=None, help="parallel jobs (default: cores)")
    parser.add_argument("--against", default=str(BOOK_DATA / "verdicts.csv"),
                        help="the committed verdict table (default: book/data/verdicts.csv)")
    parser.add_argument("--out", help="also write the measured table as CSV here")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the check; see the module docstring."""
    args = _parser().parse_args(argv)
    against = Path(args.against)
    if not against.is_file():
        print(f"error: no committed verdict table at {against}", file=sys.stderr)
        return EXIT_USAGE
    if args.store and Path(args.store).exists():
        print(f"error: {args.store} exists; the check starts from an empty store",
              file=sys.stderr)
        return EXIT_USAGE
    if args.workers is not None and args.workers < 1:
        print(f"error: --workers must be >= 1, got {args.workers}", file=sys.stderr)
        return EXIT_USAGE
    committed = pd.read_csv(against)
    missing = [c for c in VERDICT_COLUMNS if c not in committed.columns]
    if missing:
        print(f"error: {against} lacks the columns {', '.join(missing)}", file=sys.stderr)
        return EXIT_USAGE
    with tempfile.TemporaryDirectory(prefix="rlcomp-verdicts-") as tmp:
        store = args.store or str(Path(tmp) / "results.sqlite")
        measured = measure_verdicts(args.profile, store, args.workers)
    if args.out:
        atomic_write(args.out, csv_bytes(measured))
    diff = verdict_diff(committed, measured)
    for _, row in diff.iterrows():
        print(_line(row))
    changed = int(diff["changed"].sum())
    print(f"{changed} of {len(diff)} verdicts changed against {against}")
    return EXIT_CHANGED if changed else 0


if __name__ == "__main__":
    sys.exit(main())
