"""Serving: the SavedModel export, its in-graph preprocessing, restoring a run, evaluation and prediction."""
