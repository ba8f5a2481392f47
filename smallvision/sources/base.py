"""What the source kinds share: their registry (each kind's module registers its options model)
and the arrays file name. Apart from the package's __init__, so that the kinds' modules do not
import the package that imports them."""

from __future__ import annotations

from smallvision.core.registry import Registry

SOURCES: Registry = Registry("source kind")

ARRAYS_FILE = "arrays.npz"
