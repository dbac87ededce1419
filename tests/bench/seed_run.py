"""The seed's script as a whole program, for the wall-time rows of `make bench`:
    python -m tests.bench.seed_run train SUBSETS_DIR IMAGE_SIZE EPOCHS   (the scratch convnet, as the seed)
    python -m tests.bench.seed_run features SUBSETS_DIR IMAGE_SIZE       (VGG16 features of the three subsets)
    python -m tests.bench.seed_run chain SUBSETS_DIR IMAGE_SIZE EPOCHS FINE_TUNE_EPOCHS
        (frozen VGG16 with augmentation, then its last 4 layers unfrozen: the seed's two fits, one model)
"""

import sys
from pathlib import Path

from tensorflow import keras

from tests.bench import seed_code


def main(argv: list[str]) -> None:
    what, folder, size = argv[0], Path(argv[1]), int(argv[2])
    train, validation, test = seed_code.datasets(folder, size)
    if what == "train":
        model = seed_code.scratch_model(size)
        model.fit(train, epochs=int(argv[3]), validation_data=validation, verbose=0, callbacks=[
            keras.callbacks.ModelCheckpoint(filepath=str(folder.parent / "seed-run.keras"), save_best_only=True,
                                            monitor="val_loss")])
    elif what == "chain":
        model, conv_base = seed_code.feature_extraction_with_augmentation(size)
        fits = ((int(argv[3]), "feature_extraction_with_data_augmentation"), (int(argv[4]), "fine_tuning"))
        for epochs, name in fits:
            model.fit(train, epochs=epochs, validation_data=validation, verbose=0, callbacks=[
                keras.callbacks.ModelCheckpoint(filepath=str(folder.parent / f"seed-{name}.keras"),
                                                save_best_only=True, monitor="val_loss")])
            if name != "fine_tuning":
                seed_code.fine_tune(model, conv_base)
    else:
        base = seed_code.conv_base_for(size)
        for data in (train, validation, test):
            seed_code.get_features_and_labels(base, data)


if __name__ == "__main__":
    main(sys.argv[1:])
