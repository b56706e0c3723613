"""From scores to verdicts: rules, sample and dataset decisions, findings, baselines."""
