"""Benchmarks behind bin/benchmark: model (train, infer), input, serving and memory."""
