"""Faces in photos: MTCNN detection, alignment, the gallery, annotation."""
