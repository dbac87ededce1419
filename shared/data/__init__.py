"""The data: fetching, the split, the tf.data pipeline, the VGG16 feature store, MNIST's arrays."""
