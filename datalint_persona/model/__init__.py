"""The model: loading and device, chat rendering, activation capture, steering, y' backends."""
