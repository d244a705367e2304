"""Media: safe decoding, hashing, classification, hash lists and the scan pipeline."""
