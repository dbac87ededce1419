"""What users write to score a folder of photos with a trained model, as whole programs for `make bench`:
    python -m tests.bench.infer_run directory FOLDER MODEL IMAGE_SIZE OUT.csv
        (keras.utils.image_dataset_from_directory + model.predict, the seed's way of reading images)
    python -m tests.bench.infer_run loop FOLDER MODEL IMAGE_SIZE OUT.csv
        (one keras.utils.load_img + model.predict per image: what people write first, keras-io#431)
"""

import sys
from pathlib import Path

import numpy as np
from tensorflow import keras


def main(argv: list[str]) -> None:
    how, folder, model_path, size, out = argv[0], Path(argv[1]), argv[2], int(argv[3]), Path(argv[4])
    model = keras.models.load_model(model_path)
    files = sorted(p for p in folder.iterdir() if p.suffix == ".jpg")
    if how == "directory":
        data = keras.utils.image_dataset_from_directory(folder, labels=None, image_size=(size, size), batch_size=32,
                                                        shuffle=False, verbose=False)
        p_dog = model.predict(data, verbose=0).ravel()
    else:
        p_dog = np.array([float(model.predict(keras.utils.img_to_array(
            keras.utils.load_img(f, target_size=(size, size)))[None], verbose=0)[0, 0]) for f in files])
    out.write_text("file,p_dog\n" + "".join(f"{f.name},{p:.6f}\n" for f, p in zip(files, p_dog, strict=True)))


if __name__ == "__main__":
    main(sys.argv[1:])
