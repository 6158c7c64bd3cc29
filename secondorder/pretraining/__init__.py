"""Pre-training of the autoencoders before fine-tuning (Hinton & Salakhutdinov 2006)."""
