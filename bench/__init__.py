"""chatgate's benchmark: the gateway side by side with the direct path, in one run."""
