"""Benchmarks behind ``fkt-bench``: augmentation throughput and training-step throughput, each
arm interleaved with the others in one run, reported as medians and ratios."""
