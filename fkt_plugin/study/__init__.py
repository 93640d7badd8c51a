"""Studies (``fkt-study``): which training method gives the best classifier on a user's images
at the user's label budget, and how sure that is.

:mod:`.look` (the data's facts, the label check, the recipe family), :mod:`.pilot` (each arm
timed on this machine), :mod:`.plan` (the schedule and seeds the budget allows, as a compare
recipe), :mod:`.decide` (the recommendation from the paired intervals), :mod:`.report`
(report.md and a self-contained report.html), :mod:`.deliver` (the recommended method
retrained and exported), :mod:`.run` (the whole study, resumable).
"""

from fkt_plugin.study.decide import Recommendation, recommend
from fkt_plugin.study.run import run_study

__all__ = ["Recommendation", "recommend", "run_study"]
