"""Serving: the SavedModel export and its folder, its in-graph preprocessing, its evaluation, prediction and the clients."""
