"""Models: a backbone from the BACKBONES registry, a head, a freezing policy.

The options (smallvision.models.config) are torch-free; the modules that build them import
torch, so this package imports them only when one of their names is asked for."""

_LAZY = {
    "BACKBONES": "smallvision.models.config",
    "ModelConfig": "smallvision.models.config",
    "Classifier": "smallvision.models.classifier",
    "build_model": "smallvision.models.classifier",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
