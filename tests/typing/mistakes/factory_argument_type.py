"""Mistake: a learning rate given as a str (it is a float or a schedule, optax.ScalarOrSchedule)."""

import momentum_optax as mo

opt = mo.sgd("0.1", momentum=0.9)  # planted
