"""Models: a backbone from the BACKBONES registry, a head, a freezing policy."""

from smallvision.models.backbones import BACKBONES  # noqa: F401
from smallvision.models.classifier import Classifier, ModelConfig, build_model  # noqa: F401
