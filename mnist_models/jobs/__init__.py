"""Background jobs: the worker that runs trainings and hyperparameter searches in a training process of its own
(``worker``), that process (``child``), and the orders and updates they exchange (``orders``). Above training and
tuning, which it drives."""
