"""The paper's other measurements: monitoring, finetuning shift, steering sweeps, preventative steering."""
