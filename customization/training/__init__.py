"""Plain PyTorch/transformers/peft training code: no Django import anywhere below.

The Celery side (customization.tasks) calls `recipe.train` in a child process
or launches ``python -m customization.training.run`` (alone or under torchrun).
"""
