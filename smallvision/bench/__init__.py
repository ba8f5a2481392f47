"""`python -m smallvision.bench`: measured speed figures (not part of `dvc repro`)."""
