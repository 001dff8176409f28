"""FFmpeg's WHIP muxer (inside the PyAV wheel) publishing H.264 + Opus: a client no one here wrote.

    python -m tests.streaming.ffmpeg_whip URL --token T --seconds N

Runs in a process of its own (PyAV holds the GIL through the muxer's blocking HTTP exchange).
aiortc's DTLS accepts only ECDSA certificates, so it hands FFmpeg a fresh ECDSA P-256
certificate and key (``cert_file`` / ``key_file``). The pictures are streaming.synthetic's, so
a viewer can read each frame's number and capture time back. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from streaming.synthetic import AUDIO_FRAME_SAMPLES, AudioPainter, VideoPainter


def write_ecdsa_certificate(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ffmpeg-whip-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=7))
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def publish(url: str, token: str, seconds: float, audio: bool) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as directory:
        cert, key = write_ecdsa_certificate(Path(directory))
        output = av.open(url, mode="w", format="whip", options={
            "authorization": token, "cert_file": str(cert), "key_file": str(key),
            "handshake_timeout": "10000"})
        video = output.add_stream("libx264", rate=30, options={
            "profile": "baseline", "tune": "zerolatency", "preset": "ultrafast", "g": "30",
            "bf": "0"})
        video.width, video.height, video.pix_fmt = 640, 480, "yuv420p"
        video.codec_context.time_base = Fraction(1, 30)
        video.bit_rate = 1_000_000
        sound = output.add_stream("libopus", rate=48_000, layout="stereo") if audio else None
        painter, tone = VideoPainter(640, 480), AudioPainter()
        started = time.monotonic()
        frames = samples = 0
        try:
            while (now := time.monotonic()) - started < seconds:
                if sound is not None and samples / 48_000 <= now - started:
                    output.mux(sound.encode(tone.frame(samples // AUDIO_FRAME_SAMPLES)))
                    samples += AUDIO_FRAME_SAMPLES
                    continue
                due = started + frames / 30
                if due > now:
                    time.sleep(min(due - now, 0.01))
                    continue
                frame = painter.frame(frames, time.time_ns() // 1000)
                frame.pts, frame.time_base = frames, Fraction(1, 30)
                output.mux(video.encode(frame))
                frames += 1
        finally:
            output.close()  # FFmpeg DELETEs the session
    return {"video_frames": frames, "audio_frames": samples // AUDIO_FRAME_SAMPLES,
            "seconds": round(time.monotonic() - started, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.streaming.ffmpeg_whip")
    parser.add_argument("url")
    parser.add_argument("--token", required=True)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--no-audio", action="store_true")
    args = parser.parse_args(argv)
    print(json.dumps(publish(args.url, args.token, min(args.seconds, 60), not args.no_audio)),
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
