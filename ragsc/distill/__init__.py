"""Knowledge distillation: compact transmitters from large models."""
