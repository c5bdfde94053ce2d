"""What the shared editors, photo and inversions of tests/conftest.py are made with, for the tests that use them."""

EDITOR_STEPS = 5  # the default step count of sd_editor, sdxl_editor and editor
PHOTO_PROMPT = "a photo of a cat sitting on a table"  # the caption the photo is inverted with
INVERSION_METHODS = ("ddim", "null-text", "negative-prompt", "direct")  # the keys of the inversions fixtures
SDXL_SIZE = (48, 32)  # the working size of sdxl_inversions (the SD ones have the tiny model's own: 80 x 56)


def family(editor) -> str:
    """'sd' or 'sdxl': the model family of an editor, as inversions and sidecars record it."""
    return "sdxl" if editor.is_sdxl else "sd"
