"""The book's analysis: the tidy results frame (and the checkpoints) as figures, tables, verdicts.

One job per module:

- ``selection``: which rows of the tidy frame are used, and their aggregation over training seeds;
- ``figures``: the poster's figures (lines, heatmaps, scatters) and the training curves, one
  function per figure, each drawing into a given ``ax``; ``figures_bars``: the bar figures;
  ``plotting``: what the figure functions share (axis names, bands, error bars);
- ``tables``: the chapters' text tables and notes (``portable``: what every CPU agrees on);
- ``training``: the trained agents (checkpoints) as tables, and their targets;
- ``claims``: the poster's claims and the test of each, with its rule and margin;
  ``verdict_rules``: how a paired difference becomes a verdict; ``verdict_table``: the verdicts
  in words (the book's table, a chapter's paragraph).

The statistics (t intervals over training seeds, IQM, aggregation, normalization) are in the
core, :mod:`rlcomp.stats`. ``book_data`` writes the tables behind the book (``book/data/*.csv``).
"""
