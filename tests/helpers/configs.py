"""Config files the end-to-end tests write."""

# windows sized for the 45-day small simulation
SMALL_SPLIT = """
[split]
train_days = 14
validation_days = 5
test_days = 5
prequential_folds = 1
"""

SMALL = SMALL_SPLIT + """[search]
time_budget_s = 600  # the trials bind, not the machine's load
max_trials = 4
max_rounds = 120
early_stopping_rounds = 15
max_depth = [4]
learning_rate = [0.2]
n_jobs = 2
[policy]
review_capacity_per_day = 20
"""
