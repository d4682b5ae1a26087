"""Fine-tuning tasks: reading their files, featurizing, decoding model outputs into predictions, and metrics."""
