"""Configuration schemas, each with its defaults and its validation, kept apart from the
code that runs them (as solo-learn keeps ``solo/args``): :mod:`.run` (a training run),
:mod:`.evaluation` (fkt-eval), :mod:`.compare` (fkt-compare), :mod:`.solo_lars` (solo-learn's
LARS keywords)."""
