"""Metrics and the evaluations behind eval-sr, eval-fer and eval-embed."""
