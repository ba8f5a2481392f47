"""Training: the one loop for every torch recipe, and the non-torch methods."""
