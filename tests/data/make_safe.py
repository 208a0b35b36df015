"""Make tiny Sentinel-2 L2A fixtures: a .SAFE product, a folder of band files, a GeoTIFF.

All of them hold the same scene, drawn by :func:`scene_truth`:

- ten smooth reflectance fields (a sine pattern over a level that grows with the band index, so
  a band read in the wrong place is caught) on a 10 m grid, stored as uint16 digital numbers
  with the +1000 L2A offset of processing baseline 04.00;
- the 20 m bands (B05 B06 B07 B8A B11 B12) as 2 x 2 block means on a 20 m grid, so reading
  them back onto 10 m differs from the truth only by resampling;
- a no-data strip, the first :data:`NODATA_COLS` columns (DN 0 and SCL 0), like a swath edge;
- a 20 m scene classification with vegetation, bare soil, water, snow (valid) and cloud, cloud
  shadow, cirrus and a saturated pixel (invalid).

Run as a script to write every fixture into a folder::

    python tests/data/make_safe.py OUT_DIR
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import rasterio
from affine import Affine

from data_prep.sentinel2 import SCL_INVALID
from solarmap.bands import BANDS, NATIVE_RESOLUTION_M

#: Product name of the SAFE fixture (processing baseline 04.00, offset -1000).
PRODUCT = "S2A_MSIL2A_20220315T050701_N0400_R019_T43PGQ_20220315T083512"
#: Product name of the SAFE fixture without offset (baseline 03.00, before 2022-01-25).
OLD_PRODUCT = "S2A_MSIL2A_20210315T050701_N0300_R019_T43PGQ_20210315T083512"
GRANULE = "L2A_T43PGQ_A035000_20220315T051320"
CRS = "EPSG:32643"
#: Upper-left corner of the fixture grid (UTM 43N).
ORIGIN = (699960.0, 1400040.0)
#: Columns of no data at the west edge (even, so the 20 m grid has them too).
NODATA_COLS = 8
L2A_BAND_IDS = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12",
)  # fmt: skip
JP2_OPTIONS = {"QUALITY": "100", "REVERSIBLE": "YES"}

GeoTiffEncoding = Literal[
    "dn_tags", "dn", "gdal_scale", "float10000", "float10000_untagged", "float01"
]


@dataclass(frozen=True)
class Truth:
    """The fixture scene as it should read back.

    Attributes:
        reflectance: float32[10, size, size] in contract band order, NaN where no data.
        valid: bool[size, size], data present and SCL not in ``SCL_INVALID``.
        nodata: bool[size, size], the no-data strip.
        scl: uint8[size / 2, size / 2], the 20 m scene classification.
        scl10: uint8[size, size], ``scl`` repeated onto the 10 m grid.
        counts10: int32[10, size, size], reflectance x 10000 on the 10 m grid (0 at no data).
        counts20: int32[10, size / 2, size / 2], 2 x 2 block means x 10000 on the 20 m grid.
    """

    reflectance: np.ndarray
    valid: np.ndarray
    nodata: np.ndarray
    scl: np.ndarray
    scl10: np.ndarray
    counts10: np.ndarray
    counts20: np.ndarray

    @property
    def size(self) -> int:
        return int(self.valid.shape[0])

    def dn(self, band: str, *, offset: int = 1000, res: int | None = None) -> np.ndarray:
        """uint16 digital numbers of one band at 10 or 20 m (native by default), 0 at no data."""
        i = BANDS.index(band)
        res = res or NATIVE_RESOLUTION_M[band]
        counts = self.counts10[i] if res == 10 else self.counts20[i]
        nodata = self.nodata if res == 10 else self.nodata[::2, ::2]
        return np.where(nodata, 0, counts + offset).astype(np.uint16)


def scene_truth(*, size: int = 64, seed: int = 0) -> Truth:
    """The fixture scene: reflectance, validity and SCL (see the module docstring)."""
    if size < 32 or size % 2:
        raise ValueError(f"size must be even and at least 32, got {size}")
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    levels = np.linspace(0.04, 0.40, len(BANDS))
    refl = np.empty((len(BANDS), size, size))
    for i, level in enumerate(levels):
        px, py = rng.uniform(28, 44, size=2)
        ph = rng.uniform(0, 1, size=2)
        refl[i] = level + 0.03 * np.sin(2 * np.pi * (xx / px + ph[0])) * np.cos(
            2 * np.pi * (yy / py + ph[1])
        )
    counts10 = np.round(refl * 10000).astype(np.int32)
    blocks = refl.reshape(len(BANDS), size // 2, 2, size // 2, 2).mean(axis=(2, 4))
    counts20 = np.round(blocks * 10000).astype(np.int32)

    n = size // 2
    scl = np.full((n, n), 4, dtype=np.uint8)  # vegetation
    scl[: n // 4, n // 2 :] = 5  # not vegetated
    scl[3 * n // 4 :, n - 6 :] = 6  # water
    scl[n // 4 : n // 4 + 4, n // 2 : n // 2 + 4] = 9  # cloud high probability
    scl[n // 2 : n // 2 + 2, n // 2 : n // 2 + 4] = 8  # cloud medium probability
    scl[n // 4 : n // 4 + 4, n // 2 + 5 : n // 2 + 7] = 3  # cloud shadow
    scl[3 * n // 4 : 3 * n // 4 + 2, 6:10] = 10  # thin cirrus
    scl[n // 2 + 4 : n // 2 + 8, n // 4 + 2 : n // 4 + 6] = 11  # snow
    scl[n - 2, n // 2] = 1  # saturated
    scl[2, 6] = 2  # dark area
    scl[:, : NODATA_COLS // 2] = 0  # no data
    scl10 = scl.repeat(2, axis=0).repeat(2, axis=1)

    nodata = np.zeros((size, size), dtype=bool)
    nodata[:, :NODATA_COLS] = True
    counts10[:, nodata] = 0
    counts20[:, nodata[::2, ::2]] = 0
    reflectance = (counts10 / 10000).astype(np.float32)
    reflectance[:, nodata] = np.nan
    valid = ~nodata & ~np.isin(scl10, sorted(SCL_INVALID))
    return Truth(reflectance, valid, nodata, scl, scl10, counts10, counts20)


def _transform(res: int) -> Affine:
    return Affine(res, 0, ORIGIN[0], 0, -res, ORIGIN[1])


def write_raster(
    path: Path,
    data: np.ndarray,
    *,
    res: int = 10,
    crs: str | None = CRS,
    nodata: float | None = None,
    descriptions: Sequence[str] | None = None,
    tags: dict[str, Any] | None = None,
    scales: Sequence[float] | None = None,
    offsets: Sequence[float] | None = None,
    transform: Affine | None = None,
) -> Path:
    """Write ``data`` ([H, W] or [bands, H, W]) as GeoTIFF or lossless JPEG 2000 (by suffix)."""
    arr = data[None] if data.ndim == 2 else data
    profile: dict[str, Any] = {
        "driver": "JP2OpenJPEG" if path.suffix.lower() == ".jp2" else "GTiff",
        "width": arr.shape[2],
        "height": arr.shape[1],
        "count": arr.shape[0],
        "dtype": str(arr.dtype),
        "transform": transform or _transform(res),
    }
    if crs is not None:
        profile["crs"] = crs
    if nodata is not None:
        profile["nodata"] = nodata
    if profile["driver"] == "JP2OpenJPEG":
        profile.update(JP2_OPTIONS)
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(arr)
        for i, d in enumerate(descriptions or (), start=1):
            dst.set_band_description(i, d)
        if tags:
            dst.update_tags(**{k: str(v) for k, v in tags.items()})
        if scales is not None:
            dst.scales = tuple(scales)
        if offsets is not None:
            dst.offsets = tuple(offsets)
    return path


def _mtd_xml(product: str, *, offset: bool) -> str:
    baseline = product.split("_")[3][1:]
    start = f"{product[11:15]}-{product[15:17]}-{product[17:19]}T05:07:01.024Z"
    offsets = "\n".join(
        f'        <BOA_ADD_OFFSET band_id="{i}">-1000</BOA_ADD_OFFSET>'
        for i in range(len(L2A_BAND_IDS))
    )
    offset_list = (
        f"      <BOA_ADD_OFFSET_VALUES_LIST>\n{offsets}\n      </BOA_ADD_OFFSET_VALUES_LIST>\n"
        if offset
        else ""
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<n1:Level-2A_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd">
  <n1:General_Info>
    <Product_Info>
      <PRODUCT_START_TIME>{start}</PRODUCT_START_TIME>
      <PRODUCT_URI>{product}.SAFE</PRODUCT_URI>
      <PROCESSING_LEVEL>Level-2A</PROCESSING_LEVEL>
      <PRODUCT_TYPE>S2MSI2A</PRODUCT_TYPE>
      <PROCESSING_BASELINE>{baseline[:2]}.{baseline[2:]}</PROCESSING_BASELINE>
    </Product_Info>
    <Product_Image_Characteristics>
      <Special_Values>
        <SPECIAL_VALUE_TEXT>NODATA</SPECIAL_VALUE_TEXT>
        <SPECIAL_VALUE_INDEX>0</SPECIAL_VALUE_INDEX>
      </Special_Values>
      <QUANTIFICATION_VALUES_LIST>
        <BOA_QUANTIFICATION_VALUE unit="none">10000</BOA_QUANTIFICATION_VALUE>
        <AOT_QUANTIFICATION_VALUE unit="none">1000.0</AOT_QUANTIFICATION_VALUE>
        <WVP_QUANTIFICATION_VALUE unit="cm">1000.0</WVP_QUANTIFICATION_VALUE>
      </QUANTIFICATION_VALUES_LIST>
{offset_list}    </Product_Image_Characteristics>
  </n1:General_Info>
</n1:Level-2A_User_Product>
"""


def make_safe(tmp: Path, *, size: int = 64, seed: int = 0, offset: bool = True) -> Path:
    """Write an L2A ``.SAFE`` product of :func:`scene_truth` into ``tmp``; return its folder.

    With ``offset`` false the product is from baseline 03.00 (2021): DN without the +1000
    offset and no BOA_ADD_OFFSET list in ``MTD_MSIL2A.xml``.
    """
    truth = scene_truth(size=size, seed=seed)
    product = PRODUCT if offset else OLD_PRODUCT
    dn_offset = 1000 if offset else 0
    safe = tmp / f"{product}.SAFE"
    img = safe / "GRANULE" / GRANULE / "IMG_DATA"
    prefix = f"T43PGQ_{product.split('_')[2]}"
    safe.mkdir(parents=True)
    (safe / "MTD_MSIL2A.xml").write_text(_mtd_xml(product, offset=offset))
    for band in BANDS:
        res = NATIVE_RESOLUTION_M[band]
        write_raster(
            img / f"R{res}m" / f"{prefix}_{band}_{res}m.jp2",
            truth.dn(band, offset=dn_offset),
            res=res,
        )
    # Real products also carry the 10 m bands at 20 m, and AOT/WVP: the reader must skip them.
    for band in ("B02", "B03", "B04"):
        write_raster(
            img / "R20m" / f"{prefix}_{band}_20m.jp2",
            truth.dn(band, offset=dn_offset, res=20),
            res=20,
        )
    write_raster(
        img / "R20m" / f"{prefix}_AOT_20m.jp2", np.full((size // 2,) * 2, 120, "uint16"), res=20
    )
    write_raster(img / "R20m" / f"{prefix}_SCL_20m.jp2", truth.scl, res=20)
    return safe


def make_band_folder(
    tmp: Path,
    *,
    size: int = 64,
    seed: int = 0,
    ext: Literal["jp2", "tif"] = "jp2",
    naming: Literal["l2a", "short"] = "l2a",
    scl: bool = True,
) -> tuple[Path, Truth]:
    """Write one file per band (20 m bands at 20 m) into a new folder under ``tmp``.

    ``naming="l2a"`` gives ``T43PGQ_20220315T050701_B8A_20m.jp2`` names (the date sets the
    offset) and distractor files (B01, B09, TCI, AOT, WVP); ``naming="short"`` gives ``B02.tif``
    names with BOA_ADD_OFFSET / BOA_QUANTIFICATION_VALUE tags.

    Returns:
        ``(folder, truth)``.
    """
    truth = scene_truth(size=size, seed=seed)
    folder = tmp / f"bands_{naming}_{ext}"
    folder.mkdir(parents=True)
    prefix = "T43PGQ_20220315T050701_"
    tags = {"BOA_ADD_OFFSET": -1000, "BOA_QUANTIFICATION_VALUE": 10000}
    for band in BANDS:
        res = NATIVE_RESOLUTION_M[band]
        name = f"{prefix}{band}_{res}m.{ext}" if naming == "l2a" else f"{band}.{ext}"
        write_raster(
            folder / name,
            truth.dn(band),
            res=res,
            tags=tags if naming == "short" else None,
        )
    if scl:
        name = f"{prefix}SCL_20m.{ext}" if naming == "l2a" else f"SCL.{ext}"
        write_raster(folder / name, truth.scl, res=20)
    if naming == "l2a":
        half = (size // 2, size // 2)
        for other in ("B01_20m", "B09_20m", "AOT_20m", "WVP_20m"):
            write_raster(folder / f"{prefix}{other}.{ext}", np.full(half, 7, "uint16"), res=20)
        write_raster(folder / f"{prefix}TCI_10m.{ext}", np.zeros((3, size, size), "uint8"))
    return folder, truth


def make_geotiff(
    tmp: Path,
    *,
    size: int = 64,
    seed: int = 0,
    encoding: GeoTiffEncoding = "dn_tags",
    order: Sequence[str] = BANDS,
    descriptions: bool | Sequence[str] = True,
    scl: Literal["20m", "10m", "none"] = "20m",
    name: str = "T43PGQ_2022-03-15.tif",
) -> tuple[Path, Truth]:
    """Write the scene as one 10-band GeoTIFF on the 10 m grid (20 m bands already resampled).

    Args:
        encoding: ``"dn_tags"`` uint16 DN with BOA_* tags; ``"dn"`` the same without tags (the
            date in ``name`` sets the offset); ``"gdal_scale"`` uint16 DN with GDAL scale 1e-4,
            offset -0.1 and nodata 0; ``"float10000"`` float32 reflectance x10000 with a
            ``scale`` tag; ``"float10000_untagged"`` the same without the tag; ``"float01"``
            float32 reflectance 0-1. Floats hold NaN at no data.
        order: band order in the file.
        descriptions: True to describe bands by ``order``, False for none, or the descriptions.
        scl: write ``<stem>_SCL.tif`` beside the scene at 20 m or 10 m, or not at all.
        name: file name.

    Returns:
        ``(path, truth)``.
    """
    truth = scene_truth(size=size, seed=seed)
    idx = [BANDS.index(b) for b in order]
    counts = truth.counts10[idx]
    nodata = truth.nodata
    kwargs: dict[str, Any] = {}
    data: np.ndarray
    if encoding in ("dn_tags", "dn", "gdal_scale"):
        data = np.where(nodata, 0, counts + 1000).astype(np.uint16)
        if encoding == "dn_tags":
            kwargs["tags"] = {"BOA_ADD_OFFSET": -1000, "BOA_QUANTIFICATION_VALUE": 10000}
        elif encoding == "gdal_scale":
            kwargs.update(nodata=0, scales=[1e-4] * len(order), offsets=[-0.1] * len(order))
    else:
        data = counts.astype(np.float32)
        if encoding == "float01":
            data = truth.reflectance[idx].copy()
        data[:, nodata] = np.nan
        if encoding == "float10000":
            kwargs["tags"] = {"scale": "reflectance*10000 (L2A BOA, offset applied)"}
    if descriptions is True:
        kwargs["descriptions"] = list(order)
    elif descriptions:
        kwargs["descriptions"] = list(descriptions)
    path = write_raster(tmp / name, data, **kwargs)
    if scl == "20m":
        write_raster(path.with_name(f"{path.stem}_SCL.tif"), truth.scl, res=20)
    elif scl == "10m":
        write_raster(path.with_name(f"{path.stem}_SCL.tif"), truth.scl10)
    return path, truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write the fixtures into")
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    make_safe(args.out, size=args.size)
    make_band_folder(args.out, size=args.size)
    make_geotiff(args.out, size=args.size)


if __name__ == "__main__":
    main()
