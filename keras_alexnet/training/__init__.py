"""Training: train_and_evaluate (train.py), its workdir (workdir.py), steps, schedule, strategies, reports."""
