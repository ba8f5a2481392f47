"""What every stage shares: errors, files, paths, progress, registries and the prepared arrays."""
