"""Command-line entry points: fkt-train, fkt-eval, fkt-compare."""
