"""Training: the configuration, the loop, the one train → save → evaluate pipeline, the background worker and its
training process, stopping on signals, recovering interrupted trainings, and the machine-wide lock."""
