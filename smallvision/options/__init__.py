"""The options params.yaml, recipes.yaml and ssl.yaml name, validated with one clear message.

Torch- and PIL-free: validating params.yaml, or preparing a dataset, imports no training code.
Implementations (smallvision.models, smallvision.train, smallvision.inference) register against
the names these options declare."""
