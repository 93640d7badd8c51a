"""Evaluation: metrics, the linear probe, and the run results files."""
