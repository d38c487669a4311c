"""Evaluation: benchmarks that score an encoder; also run as a Lightning callback during training."""
