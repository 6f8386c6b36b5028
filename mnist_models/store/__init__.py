"""Storage: typed records, checkpoint files, saved runs, and the catalog of everything a page can show."""
