"""Measures of trained models and their samples: musical metrics and statistics across seeds."""
