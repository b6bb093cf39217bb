"""Speech clips for the audio tests, synthesized at run time with Debian's TTS programs.

- flite (``apt-get install flite``) says "hey jarvis" in four voices and two speeds: openWakeWord's
  hey_jarvis model detects these (scores > 0.6);
- espeak-ng (``apt-get install espeak-ng``) and flite say other phrases (negatives, VAD material).
  openWakeWord does not react to espeak-ng's formant voices at all, even to "hey jarvis", so espeak-ng is
  only used for negatives and for voice activity.

Clips are resampled to 16 kHz here with scipy's polyphase resampler (independent of the pipeline's own
resampler, which is under test). A missing program fails the test with the apt-get command to run.
"""

from __future__ import annotations

import functools
import shutil
from math import gcd

import numpy as np
from scipy.signal import resample_poly

from edge_infer.bench.audio import INSTALL_HINT, speech_end, synthesize

SR = 16000

POSITIVE_SPECS = [("hey jarvis", "flite", voice, speed)
                  for voice in ("kal16", "awb", "rms", "slt") for speed in (1.0, 0.85)]
NEGATIVE_SPECS = [
    ("good morning robot", "espeak-ng", "en-us", 1.0),
    ("what time is it", "espeak-ng", "en-gb", 1.0),
    ("turn on the lights please", "espeak-ng", "en+f3", 1.0),
    ("hey there how are you", "espeak-ng", "en-us", 1.3),
    ("what is the weather like today", "flite", "slt", 1.0),
    ("hello there my friend", "flite", "awb", 1.0),
    ("please open the door", "flite", "kal16", 1.0),
]


def require(program: str) -> None:
    if shutil.which(program) is None:
        raise RuntimeError(f"{program} is missing: the audio tests make their speech with it. "
                           f"Install it with: {INSTALL_HINT[program]}")


@functools.lru_cache(maxsize=None)
def clip(text: str, engine: str = "flite", voice: str = "kal16", speed: float = 1.0) -> np.ndarray:
    """Speech as 16 kHz float32 in [-1, 1] (cached; callers must not modify it)."""
    require(engine)
    x, sr = synthesize(text, engine, voice, speed)
    y = x.astype(np.float64) / 32768.0
    if sr != SR:
        g = gcd(sr, SR)
        y = resample_poly(y, SR // g, sr // g)
    y = y.astype(np.float32)
    y.setflags(write=False)
    return y


def padded(x: np.ndarray, before_s: float = 1.0, after_s: float = 1.0, gain: float = 0.7) -> np.ndarray:
    z0, z1 = np.zeros(int(before_s * SR), np.float32), np.zeros(int(after_s * SR), np.float32)
    return np.concatenate([z0, x * gain, z1]).astype(np.float32)


def to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(np.asarray(x, np.float64) * 32768), -32768, 32767).astype(np.int16)


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
