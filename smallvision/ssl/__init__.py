"""Self-supervised pretraining: one module per method (built from lightly's losses, heads
and momentum utilities), the views made on the device, one pretraining loop, and the
three-way evaluation of every pretrained backbone (kNN, linear probe, fine-tune)."""

from smallvision.ssl import barlow_twins, byol, dino, moco, none, simclr, simsiam  # noqa: F401  (register the methods)
