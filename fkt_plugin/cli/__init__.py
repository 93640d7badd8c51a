"""Command-line entry points: fkt-train, fkt-probe, fkt-demo."""
