"""Lambda entry points of the training state machine: one thin handler per step."""
