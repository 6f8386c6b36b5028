"""Storage: the typed records (checkpoint metadata, evaluations, evidence), checkpoint files, saved runs, and atomic
writes. It computes nothing: the layers above fill the records."""
