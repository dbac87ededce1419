"""Training: the five models' catalog and builders, runs, callbacks, precision, strategies, the chain, MNIST, doctor."""
