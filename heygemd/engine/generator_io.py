"""The Wav2Lip generator's input and output contract: one definition for the features, the crops and the model.

Kept free of torch so that the audio features and the face crops (and a dry run) can use it
without loading the model's libraries.

Shapes (B = batch):
    audio  (B, 1, MEL_BANDS, MEL_WINDOW)   one 200 ms window of the normalised mel spectrogram
    faces  (B, FACE_CHANNELS, FACE_SIZE, FACE_SIZE)   lower-half-masked crop ++ reference crop, BGR, in [0, 1]
    output (B, OUTPUT_CHANNELS, FACE_SIZE, FACE_SIZE)   the predicted crop, BGR, in [0, 1]
"""

from __future__ import annotations

MEL_BANDS = 80  # mel bands of the audio features
MEL_WINDOW = 16  # mel frames (200 ms) fed to the model for one video frame
FACE_SIZE = 96  # the side of the face crop in and of the predicted face out, in pixels
FACE_CHANNELS = 6  # masked crop + reference crop, 3 channels each
OUTPUT_CHANNELS = 3
