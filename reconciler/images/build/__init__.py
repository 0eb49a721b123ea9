"""Building images: the Containerfile parser and the build context's ignore rules."""
