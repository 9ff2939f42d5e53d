"""How faces are found and framed: the detector's defaults and the crop around a face box.
Imports no torch, so the CLI reads these values cheaply."""

from __future__ import annotations

PNET_WINDOW = 12  # P-Net's receptive field: the smallest face MTCNN can find, in px
MIN_FACE = 20  # the smallest face searched by default, in px (lower: slower)
DET_THRESHOLD = 0.9  # MTCNN's final-stage face probability threshold

# Images whose shorter side is at most this are taken as one face crop, not searched: MTCNN's
# last stage works on 48×48 windows, and a 48×48 FER2013 face or a 32×32 SR input leaves it
# no context to find a face in.
DIRECT_FACE_MAX_SIDE = 48
# Such an image's landmarks are searched for on a gray square this many times its side, the image
# in the middle: a face that fills the whole image gives MTCNN's windows nothing around it.
THUMBNAIL_CANVAS = 3
DETECT_MAX_SIDE = 1600  # MTCNN searches a copy at most this big; boxes are mapped back to full size

# The training crops (CelebA aligned, center 128×128) against MTCNN's boxes: the crop's side is
# (1 + FRAME_MARGIN) × the box's longer side, centred FRAME_SHIFT_UP box sides above the box
# centre (the box reaches the chin; the crop includes the forehead). docs/routing.md has the
# measurement.
FRAME_MARGIN = 0.13
FRAME_SHIFT_UP = 0.13
