"""Speech clips for the audio tests: real speech from :mod:`edge_infer.samples.speech` (flite says
"hey jarvis", which openWakeWord detects; espeak-ng and flite say the negatives), resampled to 16 kHz there
with scipy (independent of the pipeline's own resampler, which is under test), cached here. A missing TTS
program fails the test with the apt-get command to run.
"""

from __future__ import annotations

import functools

import numpy as np

from edge_infer.samples.speech import HEY_JARVIS_CLIPS, SR, speech_16k, speech_end, to_int16  # noqa: F401 (re-exported)

POSITIVE_SPECS = HEY_JARVIS_CLIPS
NEGATIVE_SPECS = [
    ("good morning robot", "espeak-ng", "en-us", 1.0),
    ("what time is it", "espeak-ng", "en-gb", 1.0),
    ("turn on the lights please", "espeak-ng", "en+f3", 1.0),
    ("hey there how are you", "espeak-ng", "en-us", 1.3),
    ("what is the weather like today", "flite", "slt", 1.0),
    ("hello there my friend", "flite", "awb", 1.0),
    ("please open the door", "flite", "kal16", 1.0),
]


@functools.lru_cache(maxsize=None)
def clip(text: str, engine: str = "flite", voice: str = "kal16", speed: float = 1.0) -> np.ndarray:
    """Speech as 16 kHz float32 in [-1, 1] (cached; callers must not modify it)."""
    y = speech_16k(text, engine, voice, speed)
    y.setflags(write=False)
    return y


def padded(x: np.ndarray, before_s: float = 1.0, after_s: float = 1.0, gain: float = 0.7) -> np.ndarray:
    z0, z1 = np.zeros(int(before_s * SR), np.float32), np.zeros(int(after_s * SR), np.float32)
    return np.concatenate([z0, x * gain, z1]).astype(np.float32)


def white_noise(seconds: float, level: float = 0.05, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(seconds * SR)) * level).astype(np.float32)


def conversation() -> tuple[np.ndarray, list[tuple[int, int]]]:
    """~12 s: negatives, two positives and gaps of different lengths -> (float32 16 kHz, keyword spans)."""
    parts, spans, n = [], [], 0
    layout = [("sil", 0.8), ("neg", 0), ("sil", 0.6), ("pos", 0), ("sil", 1.2), ("neg", 5), ("sil", 0.25),
              ("neg", 2), ("noise", 1.0), ("pos", 6), ("sil", 1.0)]
    for kind, arg in layout:
        if kind == "sil":
            x = np.zeros(int(arg * SR), np.float32)
        elif kind == "noise":
            x = white_noise(arg, 0.01, seed=3)
        else:
            x = 0.7 * clip(*(POSITIVE_SPECS if kind == "pos" else NEGATIVE_SPECS)[arg])
            if kind == "pos":
                spans.append((n, n + speech_end(x)))
        parts.append(x)
        n += x.size
    return np.concatenate(parts).astype(np.float32), spans
