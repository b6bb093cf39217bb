"""`edge-infer bag make|play|info`: rosbag2 bags without ROS installed (rosbags)."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge_infer.bags.cdr import RESTAMP_MODES
from edge_infer.errors import ConfigError
from edge_infer.pipeline.frames import ENCODINGS
from edge_infer.commands import emit, add_json, add_models_dir, models_dir


def _size(s: str) -> tuple[int, int]:
    w, h = s.lower().split("x")
    return int(w), int(h)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bag", help="make / play / inspect rosbag2 bags (sqlite3, mcap)")
    bsub = p.add_subparsers(dest="bag_command", required=True, metavar="<make|play|info>")

    m = bsub.add_parser("make", help="write a bag from the sample photos, a video file or a WAV")
    m.add_argument("out", help="bag directory to create")
    src = m.add_mutually_exclusive_group()
    src.add_argument("--photos", action="store_true", help="the zoo's sample photos as a moving-face stream (default)")
    src.add_argument("--video", help="a video file (anything cv2.VideoCapture opens)")
    src.add_argument("--wav", help="a WAV file: audio chunks")
    m.add_argument("--storage", choices=("sqlite3", "mcap"), default="sqlite3")
    m.add_argument("--version", type=int, choices=(8, 9), default=8,
                   help="rosbag2 metadata version (8: Jazzy and newer read it; 9: Kilted)")
    m.add_argument("--frames", type=int, default=None, help="number of frames (photos default 100; video: all)")
    m.add_argument("--rate", type=float, default=None, help="frames per second (photos default 30; video: its fps)")
    m.add_argument("--size", type=_size, default=None, help="WxH (photos default 1280x720; video: native)")
    m.add_argument("--topic", default=None, help="topic (default /image, /image/compressed or /audio)")
    m.add_argument("--compressed", action="store_true", help="sensor_msgs/CompressedImage (JPEG) instead of Image")
    m.add_argument("--encoding", default="rgb8", choices=ENCODINGS)
    m.add_argument("--frame-id", default="camera")
    m.add_argument("--audio-type", default="std_msgs/msg/Int16MultiArray",
                   choices=("std_msgs/msg/Int16MultiArray", "std_msgs/msg/Float32MultiArray", "std_msgs/msg/UInt8MultiArray"))
    m.add_argument("--chunk", type=int, default=512, help="audio samples per message")
    add_models_dir(m)
    add_json(m)
    m.set_defaults(func=_make)

    pl = bsub.add_parser("play", help="publish a bag's topics (original timing, --rate multiplier, or --fast)")
    pl.add_argument("bag")
    pl.add_argument("--rate", type=float, default=1.0, help="time multiplier (2 = twice as fast)")
    pl.add_argument("--fast", action="store_true", help="as fast as possible")
    pl.add_argument("--loop", action="store_true")
    pl.add_argument("--restamp", choices=RESTAMP_MODES, default="loop",
                    help="header stamps: loop = as recorded in the first pass, moved by one bag length per later "
                         "pass (stamps only increase; default); now = moved so play starts now (`ros2 topic "
                         "delay` shows transport delay); none = as recorded in every pass")
    pl.add_argument("--topics", nargs="*", default=None)
    pl.add_argument("--remap", action="append", default=[], metavar="FROM:=TO")
    pl.add_argument("--qos", choices=("bag", "sensor", "best_effort", "reliable"), default="bag",
                    help="publisher QoS (default: as recorded; best-effort topics get the sensor-data profile)")
    pl.add_argument("--wait-subscribers", type=float, default=2.0, help="seconds to wait for subscribers first")
    add_json(pl)
    pl.set_defaults(func=_play)

    i = bsub.add_parser("info", help="topics, types, counts, duration (like `ros2 bag info`)")
    i.add_argument("bag")
    add_json(i)
    i.set_defaults(func=_info)


def _make(args: argparse.Namespace) -> int:
    from edge_infer.bags.write import photo_frames, video_frames, video_rate, write_audio_bag, write_image_bag

    out = Path(args.out)
    if args.wav:
        s = write_audio_bag(out, Path(args.wav), topic=args.topic or "/audio", msgtype=args.audio_type,
                            chunk=args.chunk, storage=args.storage, version=args.version)
    else:
        compressed_topic = "/image/compressed" if args.compressed else "/image"
        if args.video:
            frames = video_frames(Path(args.video), args.frames, args.size)
            rate = args.rate or video_rate(Path(args.video))
        else:
            frames = photo_frames(models_dir(args), args.frames or 100, args.size or (1280, 720))
            rate = args.rate or 30.0
        s = write_image_bag(out, frames, rate, topic=args.topic or compressed_topic, compressed=args.compressed,
                            encoding=args.encoding, frame_id=args.frame_id, storage=args.storage,
                            version=args.version, progress=not args.json)
    d = s.as_dict()
    emit(args, {"ok": True, **d}, f"wrote {d['path']} ({d['storage']}, metadata v{d['version']}, "
                                  f"{d['duration_s']:.2f} s): " + ", ".join(f"{t} {v['type']} x{v['count']}"
                                                                           for t, v in d["topics"].items()))
    return 0


def _play(args: argparse.Namespace) -> int:
    from edge_infer.ros.bag_play import play_main

    remap = {}
    for r in args.remap:
        if ":=" not in r:
            raise ConfigError(f"--remap expects FROM:=TO, got {r}")
        a, b = r.split(":=", 1)
        remap[a] = b
    stats = play_main(Path(args.bag), rate=None if args.fast else args.rate, loop=args.loop, topics=args.topics,
                      remap=remap, qos=None if args.qos == "bag" else args.qos,
                      wait_for_subscribers_s=args.wait_subscribers, progress=not args.json, restamp=args.restamp)
    d = stats.as_dict()
    skipped = sum(d["undecodable"].values())
    emit(args, {"ok": True, **d}, f"published {d['published']} messages in {d['wall_s']:.2f} s "
                                  f"({d['rate_hz']:.1f} msg/s; bag span {d['bag_s']:.2f} s, loops {d['loops']})"
                                  + (f"; {skipped} undecodable messages not published" if skipped else ""))
    return 0


def _info(args: argparse.Namespace) -> int:
    from edge_infer.bags.read import bag_info

    d = bag_info(Path(args.bag))
    human = [f"Files:      {d['path']}", f"Storage:    {d['storage']} (metadata v{d['version']})",
             f"Duration:   {d['duration_s']:.3f} s", f"Messages:   {d['messages']}", "Topics:"]
    human += [f"  {t}  {v['type']}  count {v['count']}  ({v['serialization_format']})" for t, v in d["topics"].items()]
    emit(args, d, "\n".join(human))
    return 0


# ------------------------------------------------------------------------------ `edge-infer bench bag`
def register_bench_bag(bsub: argparse._SubParsersAction) -> None:
    """The `bench bag` sub-verb (registered from commands/bench.py's SUBVERBS)."""
    p = bsub.add_parser("bag", help="play a bag into the face pipeline at fixed rates + peak-rate search "
                                    "(ros2_benchmark method)")
    p.add_argument("bag", help="rosbag2 bag with an Image / CompressedImage topic (edge-infer bag make)")
    p.add_argument("--topic", default=None, help="image topic in the bag (default: the only one)")
    p.add_argument("--rates", default="10,30", help="fixed rates in Hz, comma separated (default 10,30)")
    p.add_argument("--runs", type=int, default=3, help="runs per fixed rate; best and worst dropped when >= 3")
    p.add_argument("--frames", type=int, default=None, help="frames per probe (default: --probe-seconds x rate)")
    p.add_argument("--probe-seconds", type=float, default=5.0)
    p.add_argument("--no-peak", action="store_true", help="skip the peak-rate search")
    p.add_argument("--peak-bounds", default="5,120", help="peak search bounds LO,HI in Hz (default 5,120)")
    p.add_argument("--tolerance", type=float, default=1.0, help="pass: output rate >= input rate - this (Hz)")
    p.add_argument("--external", action="store_true", help="measure a pipeline already running (ros2 launch)")
    p.add_argument("--namespace", default="")
    p.add_argument("--backend", default="", help="in-process pipeline backend override")
    p.add_argument("--camera", choices=("in_process", "subprocess"), default="subprocess",
                   help="where the bag's frames are published from: this process, or a camera player process of "
                        "its own (as a real driver)")
    p.add_argument("--out", default="out/bench_bag", help="directory for bench_bag.json and the plots")
    add_models_dir(p)
    add_json(p)
    p.set_defaults(func=_bench_bag)


def _bench_bag(args: argparse.Namespace) -> int:
    import json

    from edge_infer.bench.bag import BagBenchConfig
    from edge_infer.ros.bag_bench import run_bench_bag

    launch_args = {"models_dir": str(models_dir(args))}
    if args.backend:
        launch_args["backend"] = args.backend
    lo, hi = (float(x) for x in args.peak_bounds.split(","))
    config = BagBenchConfig(topic=args.topic, rates=[float(r) for r in args.rates.split(",") if r.strip()],
                            runs=args.runs, frames=args.frames, probe_seconds=args.probe_seconds,
                            peak=not args.no_peak, peak_bounds=(lo, hi), tolerance_hz=args.tolerance,
                            external=args.external, namespace=args.namespace,
                            launch_arguments={} if args.external else launch_args, camera=args.camera)
    echo = (lambda s: None) if args.json else print
    report = run_bench_bag(Path(args.bag), config, Path(args.out), progress=not args.json, echo=echo)
    if args.json:
        print(json.dumps({k: v for k, v in report.items() if k != "fixed_rates"} |
                         {"fixed_rates": [{k: v for k, v in a.items() if k not in ("per_run", "latencies_ms")}
                                          for a in report["fixed_rates"]]}, indent=2, default=str))
    else:
        print(f"wrote {report['files'].get('json')} and plots {report['files'].get('latency_hist')}, "
              f"{report['files'].get('rate_sweep')}")
    return 0
