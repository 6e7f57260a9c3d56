"""Raw tables to validated canonical tables, and the synthetic data generator."""
