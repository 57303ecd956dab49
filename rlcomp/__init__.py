"""rlcomp: compressing trained reinforcement-learning policies and measuring what it costs."""

__version__ = "0.1.0"
