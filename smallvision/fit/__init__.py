"""What every training loop shares, supervised (smallvision.train) or self-supervised
(smallvision.ssl): optimisers and schedules, augmentation on the device, the per-epoch log and
exact resume."""
