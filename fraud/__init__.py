"""Fraud scoring: features, training, the registry and the serving bundle."""

import os

# OpenMP threads (XGBoost's, LightGBM's) sleep rather than spin while they wait for one
# another. On a machine shared with other work a spinning thread holds a core that a
# working one needs, and a training fit ran 5 to 50 times slower than with one thread
# (README, "The search"); sleeping costs at most about 2x on an idle machine. The OpenMP
# runtime reads this when it loads, so it is set before anything imports xgboost or
# lightgbm; OMP_WAIT_POLICY=active in the environment (a machine of its own) keeps spinning.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
