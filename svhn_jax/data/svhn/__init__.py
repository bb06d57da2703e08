"""svhn."""
