"""Camera encodings beyond rgb8/bgr8: each decoded with OpenCV and checked against a hand-written reference
packing of a real photo (the reference follows sensor_msgs' definitions, not OpenCV, so a swapped byte
order or Bayer pattern fails), then the face pipeline still finds the astronaut's face."""

from __future__ import annotations

import numpy as np
import pytest

from edge_infer.pipeline.face_pipeline import FaceConfig, FacePipeline
from edge_infer.pipeline.frames import ENCODINGS, BadFrame, decode_raw


def _ycbcr(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ITU-R BT.601 studio-swing Y, Cb, Cr (what 4:2:2 webcams send)."""
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    cb = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    cr = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    return y, cb, cr


def pack_422(rgb: np.ndarray, order: str) -> tuple[bytes, np.ndarray]:
    """Packed 4:2:2 bytes in ``order`` ('UYVY' or 'YUYV'), chroma averaged over each pixel pair; and Y."""
    y, cb, cr = _ycbcr(rgb)
    u = (cb[:, 0::2] + cb[:, 1::2]) / 2
    v = (cr[:, 0::2] + cr[:, 1::2]) / 2
    h, w = y.shape
    out = np.empty((h, w // 2, 4), np.float64)
    planes = {"Y0": y[:, 0::2], "Y1": y[:, 1::2], "U": u, "V": v}
    names = ["U", "Y0", "V", "Y1"] if order == "UYVY" else ["Y0", "U", "Y1", "V"]
    for i, n in enumerate(names):
        out[..., i] = planes[n]
    packed = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return packed.tobytes(), np.clip(np.rint(y), 0, 255).astype(np.uint8)


def mosaic(rgb: np.ndarray, pattern: str) -> bytes:
    """A Bayer mosaic: ``pattern`` names the colours of the top-left 2x2 block row by row (e.g. 'rggb')."""
    idx = {"r": 0, "g": 1, "b": 2}
    out = np.empty(rgb.shape[:2], np.uint8)
    for k, (dy, dx) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        out[dy::2, dx::2] = rgb[dy::2, dx::2, idx[pattern[k]]]
    return out.tobytes()


@pytest.fixture(scope="module")
def photo(astronaut_rgb: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(astronaut_rgb)


@pytest.mark.parametrize("encoding,order", [("yuv422", "UYVY"), ("uyvy", "UYVY"), ("yuv422_yuy2", "YUYV"),
                                            ("yuyv", "YUYV")])
def test_yuv422(photo: np.ndarray, encoding: str, order: str) -> None:
    h, w = photo.shape[:2]
    data, y = pack_422(photo, order)
    frame = decode_raw(data, w, h, w * 2, encoding)
    assert np.array_equal(frame.gray(), y), "luma must be the Y bytes exactly (byte order)"
    err = np.abs(frame.rgb().astype(int) - photo.astype(int)).mean(axis=(0, 1))
    assert (err < 6).all(), f"mean abs error per channel {err}"
    # the other byte order must be visibly wrong: the test can fail
    wrong = decode_raw(data, w, h, w * 2, "yuyv" if order == "UYVY" else "uyvy")
    assert np.abs(wrong.rgb().astype(int) - photo.astype(int)).mean() > 20


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
def test_bayer(photo: np.ndarray, pattern: str) -> None:
    h, w = photo.shape[:2]
    data = mosaic(photo, pattern)
    frame = decode_raw(data, w, h, w, f"bayer_{pattern}8")
    err = np.abs(frame.rgb().astype(int) - photo.astype(int)).mean(axis=(0, 1))
    assert (err < 8).all(), f"{pattern}: mean abs error per channel {err}"
    assert np.allclose(frame.bgr(), frame.rgb()[..., ::-1])
    swapped = {"rggb": "bggr", "bggr": "rggb", "gbrg": "grbg", "grbg": "gbrg"}[pattern]
    wrong = decode_raw(data, w, h, w, f"bayer_{swapped}8").rgb().astype(int)
    assert np.abs(wrong[..., 0] - photo[..., 0].astype(int)).mean() > 2 * err[0], "R/B swap must show"


@pytest.mark.parametrize("encoding", ["mono16", "16UC1"])
@pytest.mark.parametrize("bigendian", [0, 1])
def test_mono16(photo: np.ndarray, encoding: str, bigendian: int) -> None:
    import cv2

    gray = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    h, w = gray.shape
    wide = gray.astype(np.uint16) * 256 + 100  # the low byte carries data too; it must not leak into the result
    data = wide.astype(">u2" if bigendian else "<u2").tobytes()
    frame = decode_raw(data, w, h, w * 2, encoding, bigendian)
    assert np.array_equal(frame.gray(), gray)
    assert frame.rgb().shape == (h, w, 3)


@pytest.mark.parametrize("encoding", ["rgb16", "bgr16"])
def test_rgb16(photo: np.ndarray, encoding: str) -> None:
    h, w = photo.shape[:2]
    src = photo if encoding == "rgb16" else photo[..., ::-1]
    data = (src.astype(np.uint16) * 257).astype("<u2").tobytes()
    frame = decode_raw(data, w, h, w * 6, encoding)
    assert np.array_equal(frame.rgb(), photo) and np.array_equal(frame.bgr(), photo[..., ::-1])


@pytest.mark.parametrize("encoding", [e for e in ENCODINGS if ENCODINGS[e][1] != "uint8" or ENCODINGS[e][0] == 2
                                      or e.startswith("bayer")])
def test_bad_sizes_are_counted_reasons(encoding: str) -> None:
    channels, dtype = ENCODINGS[encoding]
    step = 64 * channels * np.dtype(dtype).itemsize
    with pytest.raises(BadFrame) as e:
        decode_raw(b"\0" * (step * 48 - 1), 64, 48, step, encoding)
    assert e.value.reason == "bad_length"
    with pytest.raises(BadFrame) as e:
        decode_raw(b"", 64, 48, step - 1, encoding)
    assert e.value.reason == "bad_step"
    if channels == 2:
        with pytest.raises(BadFrame) as e:
            decode_raw(b"\0" * (63 * 4 * 48), 63, 48, 63 * 4, encoding)
        assert e.value.reason == "odd_width"


@pytest.mark.parametrize("encoding", ["yuv422_yuy2", "bayer_rggb8", "mono16"])
def test_pipeline_finds_the_face(models_dir, photo: np.ndarray, encoding: str) -> None:
    import cv2

    h, w = photo.shape[:2]
    if encoding == "yuv422_yuy2":
        data, step = pack_422(photo, "YUYV")[0], w * 2
    elif encoding == "bayer_rggb8":
        data, step = mosaic(photo, "rggb"), w
    else:
        data, step = (cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257).astype("<u2").tobytes(), w * 2
    pipe = FacePipeline.from_models_dir(models_dir, config=FaceConfig(tracking=False))
    result = pipe.process(decode_raw(data, w, h, step, encoding))
    assert len(result.faces) == 1
    x1, y1, x2, y2 = result.faces[0].box
    assert 150 < (x1 + x2) / 2 < 300 and 50 < (y1 + y2) / 2 < 200
