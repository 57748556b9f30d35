"""Training runs read back: a workdir's checkpoint restored with its labels and statistics, and evaluated.

Between training (which writes the workdir) and serving (which exports it): bin/export,
bin/evaluate, bin/report and the study read runs through restore.py and evaluate.py.
"""
