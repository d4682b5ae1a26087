"""Running trained models: sentence embeddings, predictions of fine-tuned models, search indexes and export."""
