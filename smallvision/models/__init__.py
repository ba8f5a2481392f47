"""The torch side every torch stage shares: backbones and the classifier around them, the device
and precision, metrics and retrieval. The options (smallvision.options.model) are torch-free;
smallvision.models.backbones registers the builders against their names."""
