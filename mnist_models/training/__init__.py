"""Training: the configuration, the loop, the one train → save → evaluate pipeline, and the background worker."""
