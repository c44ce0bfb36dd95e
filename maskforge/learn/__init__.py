"""Learning: transforms, image caches, samplers, models, devices, DDP and the training loop."""
