"""Parts the claims share, kept apart so that ``experiments/claims/`` lists only the
registered experiments: the race over tuned arms that E2, E4 and E5 share (``speedup``),
C14's batch-size arms (``batch_size``), C11's gradient errors (``ema_error``), C15's tuning
budget (``budget``), the wall-clock per step (``wallclock``), the randomised ravines
(``ravines``), the textbook checks (``quadratic_checks``, ``quadratic_report``,
``ema_check``, ``every_seed``, ``textbook_config``) and E1's restarts on random quadratics
(``restart_quadratic``)."""
