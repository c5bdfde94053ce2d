"""Files that are never half written: the atomic write, hashes, and opening without following links."""
