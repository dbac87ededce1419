"""Training: the models' catalog and builders, runs, callbacks, precision, strategies, MNIST, doctor."""
