"""Datasets, degradations and samplers."""
