"""Record the portable regression values into ``tests/data/regression.json``.

Compresses the committed seed-0 agents with the specs of :mod:`rlcomp.probes.regression` and
records, for each: the compressed file's size and SHA-256, the size measures, the network outputs
and discrete actions on a fixed batch of observations (recorded too), the per-episode returns, and,
for the chaotic environment (HalfCheetah), the spread of the mean return when the evaluation is
re-run with observations perturbed by 1e-6 relative noise, from which the test's band is derived.
``tests/test_portable_regression.py`` compares against the file on any x86-64 CPU.

Re-record on purpose when a change is meant to move these values (a compressor, the file format,
a checkpoint), review ``git diff tests/data/regression.json`` and commit it with that change::

    .venv/bin/python benchmarks/record_regression.py            # writes tests/data/regression.json
    .venv/bin/python benchmarks/record_regression.py --out /tmp/r.json

Runs on one PyTorch thread, in about a minute. The last line is JSON (where the file went and the
bands).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from rlcomp.probes import regression
from rlcomp.provenance import provenance

DEFAULT_OUT = regression.ROOT / "tests" / "data" / "regression.json"


def _dumps(values: dict) -> str:
    """JSON with one line per key and per row of numbers (reviewable with ``git diff``)."""
    text = json.dumps(values, indent=1, sort_keys=True)
    numbers = re.compile(r"\[\s+([-+0-9.eE,\s]+?)\s+\]")
    return numbers.sub(lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]",
                       text) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Record and write the reference values; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file to write")
    args = parser.parse_args(argv)
    values = regression.record()
    values["provenance"] = provenance(["benchmarks/record_regression.py"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(_dumps(values))
    bands = {f"{agent['env_id']} {spec}": round(case["spread"]["band"], 3)
             for agent in values["agents"].values() for spec, case in agent["specs"].items()
             if "spread" in case}
    print(json.dumps({"wrote": str(args.out), "bands": bands}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
