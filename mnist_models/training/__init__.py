"""Training: the configuration, the loop, the one train → save → evaluate pipeline, stopping on signals, recovering
interrupted trainings, distributed training, and the machine-wide lock."""
