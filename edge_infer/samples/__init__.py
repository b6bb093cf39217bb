"""Embedded default inputs, no camera or microphone needed: camera-like frames made from the zoo's sample
photos (:mod:`.scenes`) and real synthesized speech (:mod:`.speech`, the one speech synthesizer)."""
