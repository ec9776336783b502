"""Image recorder: JPEG debug frames encoded and written off the inference path."""
