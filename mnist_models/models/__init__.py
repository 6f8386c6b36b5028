"""The models: the registry every consumer iterates over, the architectures, and ImageNet initialisation."""
