"""The timm image classifier trainer: `python -m trainers.timm` (trainer environment in, callbacks out)."""
