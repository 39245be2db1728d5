"""Uploaded layout files: checked, written to a private temporary folder and read by the CLI's layout readers."""

from __future__ import annotations

import base64
import binascii
import io
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

import torch

from tcig.errors import LayoutError, TCIGError
from tcig.layout import Layout
from tcig.layout.readers import read_layout

MAX_UPLOAD_BYTES = 32 * 2**20
"""Largest request body the app reads (uploads travel base64-encoded inside it)."""

MAX_PIXELS = 4096 * 4096
"""Largest image the app decodes, painting or layout (the readers check it before decoding)."""

MAX_ZIP_MEMBERS = 512
MAX_ZIP_BYTES = 256 * 2**20

NO_LAYOUT = "choose a layout file to load (a PNG with its legend JSON, a JSON spec or a zip of masks)"

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def decode_files(files: object, missing: str = NO_LAYOUT) -> list[tuple[str, bytes]]:
    """``[(name, bytes)]`` from the page's ``[{"name": ..., "data": base64}]``, names reduced to safe base names;
    ``missing`` is the message when there is none."""
    if not isinstance(files, list) or not files:
        raise LayoutError(missing)
    if len(files) > 8:
        raise LayoutError("load one layout at a time: a PNG with its legend or classes JSON, a JSON spec or a zip")
    out = []
    for item in files:
        if not (isinstance(item, dict) and isinstance(item.get("name"), str) and isinstance(item.get("data"), str)):
            raise LayoutError("an upload must carry a file name and its content")
        name = safe_name(item["name"])
        try:
            out.append((name, base64.b64decode(item["data"], validate=True)))
        except (binascii.Error, ValueError) as err:
            raise LayoutError(f"the upload of '{name}' is damaged; choose the file again") from err
    return out


def safe_name(name: str) -> str:
    """The base name of an uploaded file, refused if it is empty, hidden or has characters a folder cannot hold."""
    base = PurePosixPath(name.replace("\\", "/")).name
    if not base or base.startswith(".") or len(base) > 200 or any(c in base for c in '\0:*?"<>|') or not base.strip():
        raise LayoutError(f"'{name[:80]}' is not a usable file name; rename the file")
    return base


def read_uploaded_layout(
    files: list[tuple[str, bytes]], vocabulary: str | None = None, palette: str | None = None
) -> Layout:
    """Read one uploaded layout as ``tcig generate --layout`` would read the same files.

    Accepted: a colour PNG with its legend JSON (or ``palette``), a label-id PNG with its ``classes`` JSON (or
    ``vocabulary``), a JSON spec, or a zip of a mask folder (one mask per class, named after it).

    Args:
        files: ``[(base name, bytes)]``.
        vocabulary: the vocabulary of a label-id PNG.
        palette: the standard palette of a colour PNG without a legend.
    """
    names = [name for name, _ in files]
    if len(set(names)) != len(names):
        raise LayoutError("two uploaded files have the same name; load each once")
    zips = [n for n in names if n.lower().endswith(".zip")]
    images = [n for n in names if n.lower().endswith(IMAGE_SUFFIXES)]
    specs = [n for n in names if n.lower().endswith(".json")]
    other = set(names) - set(zips) - set(images) - set(specs)
    if other:
        raise LayoutError(f"'{sorted(other)[0]}' is not a layout file: load a PNG, a JSON spec or a zip of masks")
    with tempfile.TemporaryDirectory(prefix="tcig-upload-") as tmp:
        try:
            return _read_in(Path(tmp), files, zips, images, specs, vocabulary, palette)
        except TCIGError as err:  # the user knows their files by name, not by the server's temporary folder
            raise type(err)(str(err).replace(f"{Path(tmp).resolve()}/", "").replace(f"{tmp}/", "")) from None


def _read_in(folder: Path, files, zips: list[str], images: list[str], specs: list[str], vocabulary, palette) -> Layout:
    """:func:`read_uploaded_layout`'s work, in the temporary ``folder``."""
    if zips:
        if len(files) > 1:
            raise LayoutError("load a zip of masks on its own")
        masks = folder / Path(zips[0]).stem
        _extract_masks(files[0][1], masks)
        return read_layout(masks, max_pixels=MAX_PIXELS)
    if len(images) > 1:
        raise LayoutError("load one layout image at a time (with its legend or classes JSON)")
    if not images:
        if len(specs) != 1:
            raise LayoutError("load one JSON spec, or a layout PNG with its legend JSON")
        (folder / specs[0]).write_bytes(files[0][1])
        return read_layout(folder / specs[0], max_pixels=MAX_PIXELS)
    if len(specs) > 1:
        raise LayoutError("load a layout PNG with one legend or classes JSON")
    image = folder / images[0]
    data = dict(files)
    image.write_bytes(data[images[0]])
    if specs:
        # beside the image under the name the readers look for, whatever it was called
        image.with_suffix(".json").write_bytes(data[specs[0]])
    return read_layout(image, vocabulary=vocabulary, palette=palette, max_pixels=MAX_PIXELS)


def _extract_masks(data: bytes, folder: Path) -> None:
    """Extract the image files of a zip of masks flat into ``folder``, with limits on count and size."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as err:
        raise LayoutError("the zip is damaged or not a zip file") from err
    members = [m for m in archive.infolist() if not m.is_dir() and not PurePosixPath(m.filename).name.startswith(".")]
    members = [m for m in members if "__MACOSX" not in PurePosixPath(m.filename).parts]
    if len(members) > MAX_ZIP_MEMBERS or sum(m.file_size for m in members) > MAX_ZIP_BYTES:
        raise LayoutError(f"the zip holds too much: at most {MAX_ZIP_MEMBERS} masks and {MAX_ZIP_BYTES >> 20} MiB")
    folder.mkdir()
    for member in members:
        name = safe_name(member.filename)
        target = folder / name
        if target.exists():
            raise LayoutError(f"the zip holds two masks named '{name}'; keep one per class")
        with archive.open(member) as source:
            target.write_bytes(source.read(MAX_ZIP_BYTES + 1))
    if not members:
        raise LayoutError("the zip holds no mask images; zip a folder of one mask per class")


def decode_photo(files: object) -> tuple[str, torch.Tensor]:
    """The one photo of an upload (``[{"name", "data"}]``) as ``(name, FloatTensor[1,3,H,W] in [0,1])``."""
    import io

    from tcig.io.pictures import open_image, photo_tensor

    if isinstance(files, list) and len(files) > 1:
        raise LayoutError("choose one photo")
    ((name, data),) = decode_files(files, "choose a photo (PNG, JPEG, WebP, BMP or TIFF)")
    if not name.lower().endswith(IMAGE_SUFFIXES):
        raise LayoutError(f"'{name}' is not a photo: choose a PNG, JPEG, WebP, BMP or TIFF file")
    return name, photo_tensor(open_image(io.BytesIO(data), MAX_PIXELS, LayoutError, name=name))
