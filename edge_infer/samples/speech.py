"""Real synthesized speech, the embedded default input for everything audio: the demo, `bench audio` and the
audio tests all take their clips from here (one synthesizer, one resampler, one int16 conversion).

Speech comes from Debian's TTS programs (``apt-get install flite espeak-ng``), run at call time so nothing
is committed. openWakeWord's models do not react to espeak-ng's formant voices at all (scores < 0.05 for
"hey jarvis"), so wake-word positives use flite's voices (:data:`HEY_JARVIS_CLIPS`); espeak-ng gives other
voices for negatives and voice activity.

Clips are resampled to 16 kHz with scipy's polyphase resampler, on purpose not with the pipeline's own
streaming resampler: the tests feed these clips to that resampler, which is under test.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
import wave
from math import gcd
from pathlib import Path

import numpy as np

from edge_infer.errors import EdgeInferError

SR = 16000
INSTALL_HINT = {"espeak-ng": "apt-get install espeak-ng", "flite": "apt-get install flite"}

# (text, engine, voice, speed): "hey jarvis" in four flite voices at two speeds; the hey_jarvis model
# detects each of these with scores > 0.6 (most > 0.9).
HEY_JARVIS_CLIPS = [("hey jarvis", "flite", voice, speed)
                    for voice in ("kal16", "awb", "rms", "slt") for speed in (1.0, 0.85)]


class SpeechSynthesisError(EdgeInferError, RuntimeError):
    """A TTS program is missing or failed; the message names the apt package to install."""


def _read_wav(data: bytes) -> tuple[np.ndarray, int]:
    with wave.open(io.BytesIO(data)) as w:
        if w.getsampwidth() != 2:
            raise SpeechSynthesisError(f"expected 16-bit WAV from the TTS program, got {8 * w.getsampwidth()}-bit")
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        if w.getnchannels() > 1:
            x = x.reshape(-1, w.getnchannels())[:, 0]
        return x.copy(), w.getframerate()


def synthesize(text: str, engine: str = "flite", voice: str | None = None, speed: float = 1.0) -> tuple[np.ndarray, int]:
    """Speech from a Debian TTS program -> (int16 samples, sample rate), at the program's own rate.

    ``engine``: "flite" (voices kal16, awb, rms, slt; 16 kHz) or "espeak-ng" (voices en-us, en-gb, en+f3, ...;
    22050 Hz). ``speed`` > 1 speaks faster. Raises SpeechSynthesisError naming the apt package when missing.
    """
    if engine not in INSTALL_HINT:
        raise SpeechSynthesisError(f"unknown TTS engine '{engine}' (flite or espeak-ng)")
    exe = shutil.which(engine)
    if exe is None:
        raise SpeechSynthesisError(f"{engine} is not installed; it makes the speech clips for the audio demo, tests "
                                   f"and bench: {INSTALL_HINT[engine]}")
    try:
        if engine == "espeak-ng":
            cmd = [exe, "-v", voice or "en-us", "-s", str(int(round(175 * speed))), "--stdout", text]
            return _read_wav(subprocess.run(cmd, capture_output=True, check=True, timeout=60).stdout)
        with tempfile.TemporaryDirectory() as d:
            out = Path(d) / "say.wav"
            cmd = [exe, "-voice", voice or "kal16", "--setf", f"duration_stretch={1.0 / speed:.4f}", "-t", text,
                   "-o", str(out)]
            subprocess.run(cmd, capture_output=True, check=True, timeout=60)
            return _read_wav(out.read_bytes())
    except subprocess.CalledProcessError as e:
        raise SpeechSynthesisError(f"{engine} failed on {text!r} (voice {voice}): "
                                   f"{e.stderr.decode(errors='replace').strip()[-300:]}") from e


def speech_16k(text: str, engine: str = "flite", voice: str | None = None, speed: float = 1.0) -> np.ndarray:
    """Synthesized speech as 16 kHz float32 in [-1, 1]."""
    x, sr = synthesize(text, engine, voice, speed)
    y = x.astype(np.float64) / 32768.0
    if sr != SR:
        from scipy.signal import resample_poly

        g = gcd(sr, SR)
        y = resample_poly(y, SR // g, sr // g)
    return y.astype(np.float32)


def speech_end(x: np.ndarray, rel_db: float = -35.0) -> int:
    """Index just after the last sample above ``rel_db`` of the clip's peak (end of the spoken words)."""
    a = np.abs(np.asarray(x, dtype=np.float64))
    if a.size == 0 or a.max() <= 0:
        return 0
    above = np.nonzero(a >= a.max() * 10 ** (rel_db / 20))[0]
    return int(above[-1]) + 1


def to_int16(x: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] -> int16 PCM (rounded, saturated), what a microphone driver publishes."""
    return np.clip(np.rint(np.asarray(x, np.float64) * 32768), -32768, 32767).astype(np.int16)
