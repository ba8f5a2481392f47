"""One short script per DVC stage: parse arguments, read params, call the library."""
