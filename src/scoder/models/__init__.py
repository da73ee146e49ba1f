"""Models: what a reference names (shipped alias, folder, hub name), LLM backends, embeddings."""
