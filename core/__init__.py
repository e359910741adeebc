"""The ground floor: helpers every layer needs (atomic files, images, errors, run folders, star extraction,
pure-NumPy metrics). It imports nothing of the project, so datasets, zoo, training, evaluation and the CLIs all
build on it and never on each other upwards (docs/architecture.md)."""
