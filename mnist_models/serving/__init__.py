"""Serving: the catalog of every checkpoint and run a page can show, and inference through each of them. It sits
above evaluation, evidence and novelty, whose records and scores it reads."""
