"""Building and judging vectors: contrastive and prompted extraction, calibration, evaluation."""
