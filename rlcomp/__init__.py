"""rlcomp: compressing trained reinforcement-learning policies and measuring what it costs.

The package is layered (DESIGN.md, "Layers"); a module imports only from the rows below its own,
and siblings on one row never import each other (checked by import-linter, ``make lint``):

- ``cli``, ``chapters``: entry points (the ``rlcomp`` command; running the book's chapters);
- ``analysis``: the book's claims, verdicts, tables and figures;
- ``experiments``: the results store (SQLite), sweeps, jobs, executors, the driver, the plans;
- ``probes``: costs of a policy: latency, CPU and memory, sizes and bytes;
- ``retrain``: fine-tuning a compressed policy with its agent's own training loop;
- ``agents`` | ``compress``: training algorithms | pure model transforms, compact files, ONNX;
- the core, which everything may use: ``envs`` (environments, seeding), ``nets`` (MLPs, the
  observation normaliser), ``policy`` (the acting side of an agent), ``checkpoint`` (our
  checkpoint format), ``rollout`` (seeded evaluation episodes), ``stats`` (return summaries,
  t intervals over training seeds, normalized returns), ``files`` (atomic writes; safetensors
  read and written without pickle),
  ``provenance`` (which code, command and machine made a file or a number).
"""

__version__ = "0.1.0"
