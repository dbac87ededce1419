"""The seed's own code (../shared/seed), as the seed writes it, wrapped in functions so the benchmark
can run it beside this project's path. Only the folder and the image size are parameters."""

# ruff: noqa: E231, E225
import numpy as np
from tensorflow import keras
from tensorflow.keras import layers
from tensorflow.keras.utils import image_dataset_from_directory


def datasets(new_base_dir, image_size=180):
    train_dataset=image_dataset_from_directory(
      new_base_dir/"train",
      image_size=(image_size,image_size),
      batch_size=32
    )
    validation_dataset=image_dataset_from_directory(
      new_base_dir/"validation",
      image_size=(image_size,image_size),
      batch_size=32
    )
    test_dataset=image_dataset_from_directory(
      new_base_dir/"test",
      image_size=(image_size,image_size),
      batch_size=32
    )
    return train_dataset, validation_dataset, test_dataset


def scratch_model(image_size=180):
    inputs=keras.Input(shape=(image_size,image_size,3))
    x=layers.Rescaling(1./255)(inputs)
    x=layers.Conv2D(filters=32,kernel_size=3,activation="relu")(x)
    x=layers.MaxPooling2D(pool_size=2)(x)
    x=layers.Conv2D(filters=64,kernel_size=3,activation="relu")(x)
    x=layers.MaxPooling2D(pool_size=2)(x)
    x=layers.Conv2D(filters=128,kernel_size=3,activation="relu")(x)
    x=layers.MaxPooling2D(pool_size=2)(x)
    x=layers.Conv2D(filters=256,kernel_size=3,activation="relu")(x)
    x=layers.MaxPooling2D(pool_size=2)(x)
    x=layers.Conv2D(filters=256,kernel_size=3,activation="relu")(x)
    x=layers.Flatten()(x)
    outputs=layers.Dense(1,activation="sigmoid")(x)
    model=keras.Model(inputs=inputs,outputs=outputs)
    model.compile(optimizer="rmsprop",
              loss="binary_crossentropy",
              metrics=["accuracy"])
    return model


def conv_base_for(image_size=180):
    # The seed asks for weights="imagenet"; the benchmark measures speed, which random weights share.
    return keras.applications.vgg16.VGG16(
        weights=None,
        include_top=False,
        input_shape=(image_size,image_size,3)
    )


def get_features_and_labels(conv_base, dataset):
  all_features=[]
  all_labels=[]
  for images,labels in dataset:
    preprocessed_images=keras.applications.vgg16.preprocess_input(images)
    features=conv_base.predict(preprocessed_images)
    all_features.append(features)
    all_labels.append(labels)
  return np.concatenate(all_features),np.concatenate(all_labels)


def feature_extraction_with_augmentation(image_size=180):
    # The seed asks for weights="imagenet"; the benchmark measures speed, which random weights share.
    conv_base=keras.applications.vgg16.VGG16(
        weights=None,
        include_top=False
    )
    conv_base.trainable=False
    data_augmentation=keras.Sequential(
        [
            layers.RandomFlip("horizontal"),
            layers.RandomRotation(0.1),
            layers.RandomZoom(0.2)
        ]
    )
    inputs=keras.Input(shape=(image_size,image_size,3))
    x=data_augmentation(inputs)
    x=keras.applications.vgg16.preprocess_input(x)
    x=conv_base(x)
    x=layers.Flatten()(x)
    x=layers.Dense(256)(x)
    x=layers.Dropout(0.5)(x)
    outputs=layers.Dense(1,activation="sigmoid")(x)
    model=keras.Model(inputs,outputs)
    model.compile(optimizer="rmsprop",
                  loss="binary_crossentropy",
                  metrics=["accuracy"]
                  )
    return model, conv_base


def fine_tune(model, conv_base):
    conv_base.trainable=True
    for layer in conv_base.layers[:-4]:
      layer.trainable=False
    model.compile(optimizer=keras.optimizers.RMSprop(learning_rate=1e-5),
                  loss="binary_crossentropy",
                  metrics=["accuracy"]
                  )
    return model
