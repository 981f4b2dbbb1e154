"""Evaluation: predictions files joined with ground truth, scored into a report (scorer, compat presets, compare, report)."""
