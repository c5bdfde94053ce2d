"""Their photos in, their photos out: HEIC/AVIF input, PNG/JPEG/WebP output, the photo's EXIF (orientation
reset) and ICC profile carried into every edit of it, the parameters inside every result image."""

import io

import numpy as np
import pillow_heif
import pytest
from PIL import Image, ImageCms, features

import cli
from inversion.artifact import Inversion
from inversion.photos import formats
from inversion.photos.image import load_image
from inversion.photos.metadata import EXIF_IFD, ORIENTATION, PIXEL_X, PIXEL_Y
from p2p_real import Editor
from p2p_real.files.image_files import image_format, read_parameters, save_image
from p2p_real.files.outputs import shareable

PROMPT, TARGET = "a cat sitting on a wall", "a dog sitting on a wall"
MAKE, GPS_IFD = 0x010F, 0x8825
SIDE_UP = 6  # EXIF orientation: stored sideways, shown rotated 90 degrees clockwise


@pytest.fixture(scope="module")
def icc():
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def camera_exif(width: int, height: int) -> Image.Exif:
    """EXIF as a phone writes it: sideways orientation, make, the stored size, a GPS position."""
    exif = Image.Exif()
    exif[ORIENTATION] = SIDE_UP
    exif[MAKE] = "Phone"
    exif.get_ifd(EXIF_IFD).update({PIXEL_X: width, PIXEL_Y: height, 0x9003: "2024:05:01 10:00:00"})
    exif.get_ifd(GPS_IFD)[2] = (48.0, 51.0, 24.0)
    return exif


def upright() -> np.ndarray:
    """A smooth 56x40 picture (lossy codecs keep it close): a gradient that shows which way is up."""
    y, x = np.mgrid[0:40, 0:56]
    return np.stack([x * 4, y * 6, 255 - x * 2], axis=-1).clip(0, 255).astype(np.uint8)


def stored_sideways() -> Image.Image:
    """The picture stored sideways (40x56), as a camera held upright stores it."""
    return Image.fromarray(upright()).transpose(Image.Transpose.ROTATE_90)  # orientation 6 turns it back


@pytest.fixture(scope="module")
def jpeg(tmp_path_factory, icc):
    path = tmp_path_factory.mktemp("photos") / "phone.jpg"
    stored_sideways().save(path, quality=95, exif=camera_exif(40, 56).tobytes(), icc_profile=icc)
    return path


@pytest.fixture(scope="module")
def heic(tmp_path_factory, icc):
    pillow_heif.register_heif_opener()
    path = tmp_path_factory.mktemp("photos") / "iphone.heic"
    stored_sideways().save(path, quality=95, exif=camera_exif(40, 56).tobytes(), icc_profile=icc)
    with open(path, "rb") as handle:
        assert handle.read(12)[4:12] == b"ftypheic"
    return path


@pytest.fixture(scope="module")
def edit_of(tiny_pipe):
    editor = Editor(tiny_pipe, num_inference_steps=2)
    cache = {}

    def run(path):
        if path not in cache:
            inv = editor.invert(path, PROMPT, method="ddim", progress=False)
            cache[path] = editor.edit(inv, TARGET, blend_words=(["cat"], ["dog"]), progress=False)
        return cache[path]

    return run


def assert_carried(path, icc, size=(56, 40)):
    """The photo's profile and EXIF in an output: orientation 1, the output's size, the rest as it was."""
    with Image.open(path) as img:
        assert img.size == size
        assert img.info.get("icc_profile") == icc
        exif = img.getexif()
    assert exif[ORIENTATION] == 1 and exif[MAKE] == "Phone"
    assert exif.get_ifd(EXIF_IFD)[PIXEL_X] == size[0] and exif.get_ifd(EXIF_IFD)[PIXEL_Y] == size[1]
    assert exif.get_ifd(GPS_IFD)[2] == (48.0, 51.0, 24.0)


@pytest.mark.parametrize("fmt", ["png", "jpg", "webp"])
def test_every_edit_carries_the_photos_profile_and_exif_and_its_parameters(edit_of, jpeg, icc, tmp_path, fmt):
    result = edit_of(jpeg)
    written = result.save(tmp_path, f"phone.{fmt}")
    images = [tmp_path / f"phone.{k}.{fmt}" for k in (0, 1)]
    assert set(images) <= set(written) and (tmp_path / "phone.1.mask.png") in written  # masks stay PNG
    for path in images:
        assert_carried(path, icc)
        assert read_parameters(path) == shareable(result.parameters)  # a local model by its name
    with Image.open(tmp_path / "phone.grid.png") as grid:
        assert grid.info.get("icc_profile") == icc


def test_the_inversion_file_keeps_the_profile_and_exif_for_later_edits(edit_of, jpeg, icc, tmp_path, tiny_pipe):
    inv = edit_of(jpeg).inversion
    loaded = Inversion.load(inv.save(tmp_path / "phone.inv.safetensors"))
    assert loaded.info == inv.info and loaded.info.icc_profile == icc
    result = Editor(tiny_pipe, num_inference_steps=2).edit(loaded, TARGET, progress=False)
    result.save(tmp_path, "again", format="jpg", quality=80)
    assert_carried(tmp_path / "again.1.jpg", icc)


def test_a_heic_photo_opens_upright_with_its_profile_and_exif(heic, icc):
    photo = load_image(heic)
    assert photo.original.shape == (40, 56, 3)  # turned upright by its EXIF orientation
    assert np.abs(photo.original.astype(int) - upright().astype(int)).mean() < 4  # lossy, but this picture
    assert photo.info.icc_profile == icc
    exif = Image.Exif()
    exif.load(photo.info.exif)
    assert exif[ORIENTATION] == 1 and exif[MAKE] == "Phone"


@pytest.mark.skipif(not features.check("avif"), reason="this Pillow has no AVIF plugin (Pillow >= 11.2 does)")
def test_an_avif_photo_opens_with_pillows_own_plugin(tmp_path, icc):
    path = tmp_path / "photo.avif"
    stored_sideways().save(path, quality=95, exif=camera_exif(40, 56).tobytes(), icc_profile=icc)
    photo = load_image(path)
    assert photo.original.shape == (40, 56, 3) and photo.info.icc_profile == icc


def test_without_pillow_heif_a_heic_photo_says_what_to_install(heic, monkeypatch):
    monkeypatch.setattr(formats, "register_optional_formats", lambda: ())
    assert formats.missing_reader(heic) == "a HEIC/HEIF photo, which needs pillow-heif: pip install 'p2p-real[formats]'"


def test_the_edit_command_reads_heic_and_writes_jpeg_from_the_names_extension(heic, icc, tiny_model_dir, tmp_path):
    argv = [
        "edit",
        str(heic),
        "-p",
        PROMPT,
        "-t",
        TARGET,
        "--method",
        "ddim",
        "--steps",
        "2",
        "--model",
        str(tiny_model_dir),
        "--name",
        "dog.jpg",
        "--quality",
        "90",
        "--out",
        str(tmp_path),
        "-q",
    ]
    assert cli.main(argv) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "dog.0.jpg",
        "dog.1.jpg",
        "dog.grid.png",
        "dog.inv.safetensors",
        "dog.json",
    ]
    assert_carried(tmp_path / "dog.1.jpg", icc)
    assert read_parameters(tmp_path / "dog.1.jpg")["photo"] == "iphone.heic"


def test_output_formats_and_their_errors(tmp_path):
    assert image_format(None, "cat") == ("png", "cat")
    assert image_format(None, "cat.JPEG") == ("jpg", "cat")
    assert image_format("webp", "cat") == ("webp", "cat")
    with pytest.raises(ValueError, match="format 'gif' is not one of png, jpg, webp"):
        image_format("gif")
    with pytest.raises(ValueError, match=r"name 'cat\.png' ends in \.png but the format is jpg"):
        image_format("jpg", "cat.png")
    with pytest.raises(ValueError, match="quality must be a whole number from 1 to 100"):
        save_image(tmp_path / "x.jpg", Image.new("RGB", (8, 8)), {}, "jpg", quality=101)


def test_a_result_without_a_photo_still_carries_its_parameters_in_jpeg_and_webp(tmp_path):
    text = {"parameters": '{"prompt": "un caf\\u00e9", "seed": 3}', "prompt": "un café", "Software": "p2p-real"}
    for fmt in ("jpg", "webp"):
        path = save_image(tmp_path / f"x.{fmt}", Image.new("RGB", (16, 8), (200, 10, 10)), text, fmt)
        assert read_parameters(path) == {"prompt": "un café", "seed": 3}
        with Image.open(path) as img:
            assert "icc_profile" not in img.info and img.getexif().get(ORIENTATION) is None
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, format="PNG")
    assert read_parameters(buffer) is None
