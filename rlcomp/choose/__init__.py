"""Search compressions of one user's policy for the smallest (or fastest) that keeps its return.

:func:`choose` runs the search (:mod:`.search`): a sensitivity pass and chapter 06's families make
the candidates (:mod:`.candidates`), racing spends episodes on the promising ones
(:mod:`.racing`, intervals from :mod:`.ratio`), every measurement goes through the results store
(:mod:`.ledger`, :mod:`.build`); :mod:`.artifacts` writes the recommended policy and its ONNX
export, :mod:`.report` the report, and :mod:`.command` is ``rlcomp choose``.
"""

from rlcomp.choose.racing import Race, RacingPlan, decide
from rlcomp.choose.ratio import RatioInterval, normalized_interval
from rlcomp.choose.search import ChooseConfig, ChooseError, ChooseResult, choose

__all__ = ["ChooseConfig", "ChooseError", "ChooseResult", "Race", "RacingPlan", "RatioInterval",
           "choose", "decide", "normalized_interval"]
