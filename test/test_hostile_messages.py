"""Hostile ROS messages, the ROS-free half: what the image and audio message decoders
(pipeline/frames.py, pipeline/audio_stream.py) do with crafted and random input.

Each crafted case is the issue's reproduction (a 250 KB PNG that decodes to 16000x16000, a JPEG whose frame
header claims 16000x16000, raw images whose fields lie, audio chunks with absurd sizes, rates and channel
counts): it must be refused with the decoder's bad-input error and its ``reason`` (the nodes count it as
``bad_<reason>``), before anything the size of the claim is allocated: this process's peak RSS is measured
around the call (VmHWM, reset through /proc/self/clear_refs). The property-based tests (hypothesis, a fixed
derandomized budget) feed random and mutated input: the answer is a frame/array of the declared size or the
bad-input error, never another exception, never a decode over the pixel limit.
"""

from __future__ import annotations

import contextlib
import math
import struct
import time

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_infer.pipeline.audio_stream import (MAX_CHANNELS, MAX_SAMPLE_RATE, AudioStream, BadChunk, StreamConfig,
                                              StreamingResampler)
from edge_infer.pipeline.frames import (ENCODINGS, MAX_IMAGE_PIXELS, MAX_JPEG_SCANS, BadFrame, Frame,
                                        decode_compressed, decode_raw, read_compressed_header)
from hostile import RSS_BOUND_MB
from hostile_media import (encode, jpeg_with_extra_scans, png_bomb, sample_bgr, set_jpeg_size, set_png_size,
                           with_exif_orientation)

FUZZ = settings(max_examples=250, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ------------------------------------------------------------------------------------------------- helpers
def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/self/status")


@contextlib.contextmanager
def peak_rss_growth():
    """{'mb': peak RSS growth inside the block}. The peak (VmHWM) is reset to the current RSS first
    (``echo 5 > /proc/self/clear_refs``); where that is not allowed, growth above the earlier peak only."""
    out: dict[str, float] = {}
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        base = _status_kb("VmRSS")
    except OSError:
        base = _status_kb("VmHWM")
    yield out
    out["mb"] = max(0.0, (_status_kb("VmHWM") - base) / 1024)


class DecodeSpy:
    """Wraps the real cv2.imdecode: counts calls and remembers the size of every image it returned."""

    def __init__(self, real) -> None:
        self.real, self.calls, self.decoded = real, 0, []

    def __call__(self, *args, **kwargs):
        self.calls += 1
        img = self.real(*args, **kwargs)
        if img is not None:
            self.decoded.append(img.shape[:2])
        return img

    def reset(self) -> None:
        self.calls, self.decoded = 0, []


@pytest.fixture(scope="module")
def imdecode():
    """cv2.imdecode, observed (frames.py calls it through the cv2 module)."""
    spy = DecodeSpy(cv2.imdecode)
    cv2.imdecode = spy
    yield spy
    cv2.imdecode = spy.real


@pytest.fixture(scope="module")
def photo(samples_dir):
    return sample_bgr(samples_dir)


def _refused(fn, reason: str) -> BadFrame | BadChunk:
    with pytest.raises((BadFrame, BadChunk)) as e:
        fn()
    assert e.value.reason == reason, f"reason {e.value.reason!r} ({e.value}), expected {reason!r}"
    return e.value


# ------------------------------------------------------------------------------------------------- images
def test_png_bomb_is_refused_from_its_header(imdecode):
    """The issue's case: ~250 KB of PNG, 16000x16000 decoded (cv2 peaked 1.4 GB above baseline before)."""
    bomb = png_bomb()
    assert len(bomb) < 300_000
    imdecode.reset()
    with peak_rss_growth() as rss:
        err = _refused(lambda: decode_compressed(bomb, "png"), "too_large")
    assert "16000x16000" in str(err) and str(MAX_IMAGE_PIXELS) in str(err)
    assert imdecode.calls == 0, "OpenCV was asked to decode it"
    assert rss["mb"] < 20, f"{rss['mb']:.0f} MB"


def test_jpeg_whose_frame_header_claims_16000x16000_is_refused(photo, imdecode):
    """A real 512x512 JPEG with its SOF rewritten: libjpeg decoded it at the claimed size (+1.4 GB, the rest
    of the image filled in after a 'premature end of data' warning)."""
    jpeg = set_jpeg_size(encode(photo, ".jpg"), 16000, 16000)
    imdecode.reset()
    with peak_rss_growth() as rss:
        _refused(lambda: decode_compressed(jpeg, "jpeg"), "too_large")
    assert imdecode.calls == 0 and rss["mb"] < 20


def test_a_frame_header_hidden_in_an_app_segment_is_not_the_frame_header(photo, imdecode):
    """An EXIF thumbnail is a whole JPEG inside APP1: its SOF must be skipped with the segment (as libjpeg
    does), and the real, later SOF bounds the decode."""
    small = encode(cv2.resize(photo, (32, 24)), ".jpg")
    app1 = b"Exif\x00\x00" + set_jpeg_size(small, 16000, 16000)  # a 'thumbnail' claiming 16000x16000
    big = encode(cv2.resize(photo, (64, 48)), ".jpg")
    jpeg = big[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + big[2:]
    assert read_compressed_header(jpeg).width == 64
    assert decode_compressed(jpeg, "jpeg").array.shape == (48, 64, 3)
    # and the other way round: a small thumbnail does not let a huge frame through
    app1 = b"Exif\x00\x00" + small
    huge = set_jpeg_size(big, 16000, 16000)
    _refused(lambda: decode_compressed(huge[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + huge[2:]),
             "too_large")


def test_pixel_limit_is_the_callers(photo):
    png = encode(photo, ".png")
    assert decode_compressed(png, "png", max_pixels=512 * 512).array.shape == (512, 512, 3)
    _refused(lambda: decode_compressed(png, "png", max_pixels=512 * 512 - 1), "too_large")
    _refused(lambda: decode_compressed(set_png_size(png, 0, 512)), "zero_size")


@pytest.mark.parametrize("ext", [".bmp", ".tiff", ".webp", ".jp2", ".ppm", ".hdr", ".ras"])
def test_formats_other_than_png_and_jpeg_are_refused_undecoded(photo, imdecode, ext):
    """OpenCV decodes these too (each its own parser); camera topics carry jpeg or png."""
    data = encode(photo.astype(np.float32) / 255 if ext == ".hdr" else photo, ext)
    assert cv2.imdecode.real(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) is not None  # OpenCV would
    imdecode.reset()
    _refused(lambda: decode_compressed(data, ext[1:]), "unsupported_format")
    assert imdecode.calls == 0


@pytest.mark.parametrize("data,reason", [
    (b"", "zero_size"), (b"garbage that is no image", "unsupported_format"),
    (b"\xff\xd8garbage", "corrupt_compressed"), (b"\x89PNG\r\n\x1a\n", "corrupt_compressed"),
    (b"\xff\xd8" + b"\xff\x01" * 5000, "corrupt_compressed"),  # markers without end: the walk is bounded
    (b"\xff\xd8\xff\xda\x00\x02", "corrupt_compressed"),  # a scan before the frame header
    (b"\xff\xd8" + b"\xff" * 2_000_000, "corrupt_compressed"),  # fill bytes without end (a regex backtracked on it)
    (b"\xff\xd8" + b"\x00" * 2_000_000, "corrupt_compressed"),  # garbage without a marker
])
def test_garbage_is_refused_with_a_reason(imdecode, data, reason):
    imdecode.reset()
    started = time.monotonic()
    _refused(lambda: decode_compressed(data), reason)
    assert imdecode.calls == 0 and time.monotonic() - started < 1.0


def test_a_jpeg_with_too_many_scans_is_refused_before_decoding(photo, imdecode):
    """Each progressive scan is a pass over the whole image: 300 repeated scans made libjpeg 70x slower on a
    512x512 photo (~2 minutes at 8K, per message). Real encoders write 1 or ~10 scans."""
    assert decode_compressed(encode(photo, ".jpg", cv2.IMWRITE_JPEG_PROGRESSIVE, 1)).array.shape == (512, 512, 3)
    assert decode_compressed(jpeg_with_extra_scans(photo, MAX_JPEG_SCANS - 10)).array.shape == (512, 512, 3)
    imdecode.reset()
    _refused(lambda: decode_compressed(jpeg_with_extra_scans(photo, 300)), "too_many_scans")
    assert imdecode.calls == 0


def test_exif_rotation_is_not_a_size_mismatch(photo):
    """OpenCV applies the EXIF orientation (a 64x32 JPEG decodes 32 wide, 64 high): that is not a lying header."""
    jpeg = with_exif_orientation(encode(cv2.resize(photo, (64, 32)), ".jpg"), 6)
    assert decode_compressed(jpeg).array.shape == (64, 32, 3)


def test_a_jpeg_header_claiming_more_than_its_data_decodes_only_within_the_limit(photo):
    """A SOF that lies within the limit: libjpeg fills the missing part; the memory is what the limit allows."""
    jpeg = set_jpeg_size(encode(cv2.resize(photo, (64, 64)), ".jpg"), 200, 100)
    assert decode_compressed(jpeg, max_pixels=200 * 100).array.shape == (100, 200, 3)
    _refused(lambda: decode_compressed(jpeg, max_pixels=200 * 100 - 1), "too_large")


@pytest.mark.parametrize("fields,reason", [
    (dict(width=100_000, height=100_000, step=300_000, encoding="rgb8", data=b"\x00" * 16), "too_large"),
    (dict(width=16000, height=16000, step=16000, encoding="mono8", data=b""), "too_large"),
    (dict(width=10, height=1000, step=2**31, encoding="mono8", data=b"\x00" * 16), "too_large"),  # step lies
    (dict(width=2**32 - 1, height=1, step=2**32 - 1, encoding="mono8", data=b""), "too_large"),
    (dict(width=4, height=4, step=12, encoding="rgb8", data=b"\x00" * 47), "bad_length"),
])
def test_raw_images_whose_fields_lie_are_refused(fields, reason):
    kwargs = {k: v for k, v in fields.items() if k != "data"}
    with peak_rss_growth() as rss:
        _refused(lambda: decode_raw(fields["data"], **kwargs), reason)
    assert rss["mb"] < 5


def test_an_honest_raw_image_over_the_limit_is_refused_before_any_conversion():
    """7681x4321 mono8 (33 MB, one pixel row over 8K): its colour views cost 190 MB above baseline before."""
    data = bytes(7681 * 4321)
    with peak_rss_growth() as rss:
        _refused(lambda: decode_raw(data, 7681, 4321, 7681, "mono8"), "too_large")
    assert rss["mb"] < 5
    frame = decode_raw(data, 7681, 4321, 7681, "mono8", max_pixels=7681 * 4321)  # the limit is the caller's
    assert frame.bgr().shape == (4321, 7681, 3)


def test_memory_stays_flat_over_a_stream_of_hostile_images(photo):
    """30 of each crafted image in a row: the peak stays where one good frame puts it."""
    hostile = [png_bomb(), set_jpeg_size(encode(photo, ".jpg"), 16000, 16000), encode(photo, ".bmp"),
               jpeg_with_extra_scans(photo, 300), b"\xff\xd8" + bytes(range(256)) * 40]
    good = encode(photo, ".jpg")
    with peak_rss_growth() as rss:
        for _ in range(30):
            for data in hostile:
                with pytest.raises(BadFrame):
                    decode_compressed(data)
            with pytest.raises(BadFrame):
                decode_raw(b"\x00" * 64, 16000, 16000, 48000, "rgb8")
        assert decode_compressed(good).array.shape == (512, 512, 3)
    assert rss["mb"] < RSS_BOUND_MB / 4, f"{rss['mb']:.0f} MB"


# ------------------------------------------------------------------------------------------------- audio
def _stream(**kw) -> AudioStream:
    return AudioStream(StreamConfig(**kw))


def test_an_oversize_chunk_is_dropped_before_decoding():
    """8M int16 samples in one message: decoding made float64 copies (+123 MB) and the models ran over 500 s
    of audio. Now: dropped, counted as too_large, nothing allocated; the stream goes on."""
    s = _stream()
    big = np.zeros(8_000_000, np.int16)
    raw = big.tobytes()  # raw bytes (UInt8MultiArray / AudioData) are sized the same way
    with peak_rss_growth() as rss:
        out = s.push(big)
        out_bytes = s.push(raw)
    assert out.samples.size == 0 and out_bytes.samples.size == 0 and rss["mb"] < 5
    assert s.stats.bad_reasons == {"too_large": 2} and s.stats.bad_chunks == 2
    assert s.push(np.zeros(1600, np.int16)).samples.size > 0


@pytest.mark.parametrize("rate", [383_999, 100_003, 1_000_003, 2**31 - 1, 2**64, -48000])
def test_absurd_sample_rates_are_refused_without_building_a_filter(rate):
    """383999 Hz shares no factor with 16 kHz: a 16000-phase filter (+905 MB, 3.8 s before); 1000003 Hz:
    +2.35 GB, 15 s. Now dropped as sample_rate, and the stream keeps its rate."""
    s = _stream()
    with peak_rss_growth() as rss:
        out = s.push(np.zeros(1600, np.int16), sample_rate=rate)
    assert out.samples.size == 0 and rss["mb"] < 5
    assert s.stats.bad_reasons == {"sample_rate": 1} and s.stats.rate_changes == 0
    assert s.push(np.zeros(1600, np.int16)).samples.size > 0


@pytest.mark.parametrize("rate", [8000, 11025, 22050, 44100, 44056, 47952, 48000, 96000, 192000, 352800, 384000])
def test_real_sample_rates_are_accepted(rate):
    s = _stream()
    s.push(np.zeros(rate // 10, np.int16), sample_rate=rate)
    assert s.stats.bad_chunks == 0 and s.stats.rate_changes == 1


def test_absurd_channel_counts_are_refused_and_carry_nothing():
    """2**31 channels: every sample was 'a partial frame' carried into the next chunk (unbounded growth)."""
    s = _stream()
    for _ in range(50):
        s.push(np.zeros(100_000, np.int16), channels=2**31)
    s.push(np.zeros(1600, np.int16), channels=MAX_CHANNELS + 1)
    assert s.stats.bad_reasons == {"channels": 51} and s.stats.channel_changes == 0
    assert s.push(np.zeros(MAX_CHANNELS * 100, np.int16), channels=MAX_CHANNELS).samples.size > 0


def test_stamp_jumps_never_zero_fill_more_than_max_gap_fill_s():
    s = _stream()
    s.push(np.zeros(1600, np.int16), stamp=100.0)
    filled = s.stats.output_samples
    out = s.push(np.zeros(1600, np.int16), stamp=100.0 + 2**31)  # 68 years later: a discontinuity, not a fill
    assert out.discontinuity and s.stats.filled_seconds == 0.0
    assert s.stats.output_samples - filled <= 1600 + 100
    for stamp in (math.nan, math.inf, -math.inf):
        assert s.push(np.zeros(1600, np.int16), stamp=stamp).samples.size == 0
    assert s.stats.bad_reasons == {"stamp": 3}
    with pytest.raises(ValueError):
        StreamConfig(max_gap_fill_s=1e6)  # the fill is allocated: its bound is bounded too
    with pytest.raises(BadChunk):
        StreamingResampler(383_999)


# ------------------------------------------------------------------------------------------------- fuzzing
_BOGUS_ENCODINGS = ["32FC1", "", "RGB8", "rgb8 ", "jpeg", "bayer_rggb16", "yuv420"]
_HUGE = st.integers(0, 2**32 - 1)


@st.composite
def raw_images(draw):
    # mostly well-formed (so that decoding and the colour views run), with every field sometimes a lie
    def usually(good, bad):
        return draw(good) if draw(st.integers(0, 9)) < 8 else draw(bad)

    encoding = usually(st.sampled_from(list(ENCODINGS)), st.sampled_from(_BOGUS_ENCODINGS))
    channels, dtype = ENCODINGS.get(encoding, (1, "uint8"))
    width, height = usually(st.integers(1, 33), _HUGE), usually(st.integers(1, 33), _HUGE)
    row = width * channels * np.dtype(dtype).itemsize
    step = usually(st.sampled_from([row, row, row + 1, row + 5]), st.one_of(st.integers(max(row - 3, 0), row), _HUGE))
    want = step * height
    fits = want <= 1 << 16  # real data only for small images; a huge claim gets a little data
    length = usually(st.just(want if fits else 0), st.one_of(st.integers(0, 1 << 12),
                                                              st.just(max(want - 1, 0) if fits else 1)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    data = rng.integers(0, 256, length, dtype=np.uint8).tobytes()
    return data, width, height, step, encoding, draw(st.integers(0, 1)), draw(st.sampled_from([64 * 64, 33 * 33,
                                                                                                MAX_IMAGE_PIXELS]))


@FUZZ
@given(raw_images())
def test_fuzz_decode_raw(case):
    data, width, height, step, encoding, big_endian, limit = case
    try:
        frame = decode_raw(data, width, height, step, encoding, big_endian, max_pixels=limit)
    except BadFrame as e:
        assert e.reason and str(e)
        return
    _assert_frame(frame, width, height, limit)
    assert frame.encoding == encoding


def _assert_frame(frame: Frame, width: int, height: int, limit: int) -> None:
    assert (frame.width, frame.height) == (width, height) and width * height <= limit
    assert frame.bgr().shape == (height, width, 3) and frame.rgb().shape == (height, width, 3)
    assert frame.gray().shape == (height, width)
    assert frame.bgr().dtype == np.uint8


_FUZZ_LIMIT = 80 * 80  # above the 64x64 seeds: a rewritten size decodes when smaller, is refused when larger


@pytest.fixture(scope="module")
def seeds(samples_dir):
    """Real PNG/JPEG bytes of the sample photos (64x64, so that every decode in the fuzz is cheap)."""
    out = []
    for name in ("astronaut.png", "camera.png"):
        img = sample_bgr(samples_dir, name, (64, 64))
        out += [encode(img, ".png"), encode(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), ".png"), encode(img, ".jpg"),
                encode(img, ".jpg", cv2.IMWRITE_JPEG_PROGRESSIVE, 1), with_exif_orientation(encode(img, ".jpg"))]
    return out


@st.composite
def mutations(draw, seeds):
    data = bytearray(draw(st.sampled_from(seeds)))
    def anywhere(n: int):  # a position after the magic bytes, often among the header's
        return st.one_of(st.integers(2, max(n, 2)), st.integers(2, max(min(n, 400), 2)))

    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["byte", "byte", "truncate", "insert", "size", "size", "size", "splice"]))
        if op == "byte" and len(data) > 2:
            data[draw(anywhere(len(data) - 1))] = draw(st.integers(0, 255))
        elif op == "truncate":
            del data[draw(st.one_of(st.integers(len(data) // 2, len(data)), st.integers(0, len(data)))):]
        elif op == "insert":
            i = draw(anywhere(len(data)))
            data[i:i] = draw(st.binary(min_size=1, max_size=16))
        elif op == "splice" and len(data) > 4:  # a copy of a stretch elsewhere: duplicated markers / segments
            a = draw(st.integers(0, len(data) - 2))
            b = draw(st.integers(a + 1, min(len(data), a + 600)))
            i = draw(st.integers(0, len(data)))
            data[i:i] = data[a:b]
        elif op == "size":
            w = draw(st.one_of(st.integers(0, 100), _HUGE))
            h = draw(st.one_of(st.integers(0, 100), _HUGE))
            data = bytearray(_rewrite_size(bytes(data), w, h))
    return bytes(data)


def _rewrite_size(data: bytes, w: int, h: int) -> bytes:
    """Rewrite the size fields where a PNG IHDR or the first JPEG SOF would have them (if it is still there)."""
    if data[12:16] == b"IHDR" and len(data) >= 33:
        return set_png_size(data, w, h)
    try:
        return set_jpeg_size(data, w & 0xFFFF, h & 0xFFFF)
    except (AssertionError, IndexError):
        return data


@FUZZ
@given(st.data())
def test_fuzz_decode_compressed_mutations(imdecode, seeds, data):
    _check_compressed(imdecode, data.draw(mutations(seeds)))


@FUZZ
@given(st.tuples(st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR", b"\xff\xd8",
                                  b"\xff\xd8\xff\xe0", b"\xff\xd8\xff\xc0\x00\x11\x08", b"BM", b"RIFF"]),
                 st.binary(max_size=600)))
def test_fuzz_decode_compressed_random_bytes(imdecode, case):
    _check_compressed(imdecode, case[0] + case[1])


def _check_compressed(imdecode: DecodeSpy, data: bytes) -> None:
    imdecode.reset()
    try:
        frame = decode_compressed(data, "fuzz", max_pixels=_FUZZ_LIMIT)
    except BadFrame as e:
        assert e.reason and str(e)
    else:
        assert frame.array.ndim == 3 and frame.array.shape[2] == 3
        _assert_frame(frame, frame.width, frame.height, _FUZZ_LIMIT)
        header = read_compressed_header(data, _FUZZ_LIMIT)
        assert {(header.width, header.height), (header.height, header.width)} & {(frame.width, frame.height)}
    over = [s for s in imdecode.decoded if s[0] * s[1] > _FUZZ_LIMIT]
    assert not over, f"OpenCV decoded {over} (limit {_FUZZ_LIMIT} pixels)"


_RATES = [8000, 16000, 22050, 44100, 48000, 96000]


@st.composite
def audio_chunks(draw):
    kind = draw(st.sampled_from(["int16", "int32", "float32", "float64", "uint8", "bytes", "2d", "list", "junk"]))
    n = draw(st.one_of(st.integers(0, 3000), st.integers(4000, 9000)))  # the fuzz stream's limit is 4096
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind in ("int16", "int32", "uint8"):
        info = np.iinfo(kind)
        data = rng.integers(info.min, info.max, n, dtype=kind, endpoint=True)
    elif kind in ("float32", "float64"):
        data = (rng.standard_normal(n) * draw(st.sampled_from([0.1, 1.0, 1e30]))).astype(kind)
        if n and draw(st.booleans()):
            data[rng.integers(0, n, 3)] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    elif kind == "bytes":
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
    elif kind == "2d":
        data = rng.integers(-100, 100, (n // 4, draw(st.integers(1, 5))), dtype=np.int16)
    elif kind == "list":
        data = rng.integers(-40000, 40000, min(n, 300)).tolist()
    else:
        data = draw(st.sampled_from([None, "text", {"a": 1}, 3.5, np.array([1 + 2j]), np.array(["x"])]))
    kwargs = {
        "stamp": draw(st.one_of(st.none(), st.floats(0, 1e4), st.floats(allow_nan=True, allow_infinity=True))),
        "sample_rate": draw(st.one_of(st.none(), st.sampled_from(_RATES), st.integers(-10, 2**40))),
        "channels": draw(st.one_of(st.none(), st.integers(-2, 40), _HUGE)),
        "sample_format": draw(st.one_of(st.none(), st.sampled_from(["s16le", "f32le", "u8", "s24le", "s32le",
                                                                     "bogus"]))),
    }
    return data, kwargs


_AUDIO_REASONS = {"too_large", "sample_rate", "channels", "stamp", "undecodable"}


@settings(FUZZ, max_examples=150)  # each example is a stream of up to 4 chunks
@given(st.lists(audio_chunks(), min_size=1, max_size=4))
def test_fuzz_audio_stream(chunks):
    limit = 4096
    s = _stream(max_chunk_samples=limit)
    for data, kwargs in chunks:
        out = s.push(data, **kwargs)
        y = out.samples
        # finite, and within the resampler's gain on full-scale noise (its filter's L1 norm: 2.14 at most)
        assert y.dtype == np.float32 and np.isfinite(y).all() and (np.abs(y) <= 2.2).all()
        # the most one chunk can emit: its samples at the lowest rate, a zero-filled gap, a resampler's tail
        assert y.size <= limit * 16 + int(s.config.max_gap_fill_s * 16000) + 2000, y.size
        assert s.stats.bad_chunks == sum(s.stats.bad_reasons.values())
        assert set(s.stats.bad_reasons) <= _AUDIO_REASONS, s.stats.bad_reasons
    assert s.flush().samples.size <= 2000
    assert 1 <= s._channels <= MAX_CHANNELS and s._rate <= MAX_SAMPLE_RATE
    assert s._sample_carry.size < MAX_CHANNELS and len(s._byte_carry) < 8  # carries stay bounded
