"""A real media tool: ffmpeg sends an RTP video stream, another ffmpeg
receives it (described by an SDP file), decodes it and counts the frames."""
import re
import signal
import subprocess
import time

FPS = 25
SIZE = "320x240"


def _sender_argv(dest_host, dest_port, local_port, seconds, sdp_path=None):
    argv = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error"]
    if seconds is not None:
        argv += ["-re"]
    argv += ["-f", "lavfi", "-i", f"testsrc=size={SIZE}:rate={FPS}"]
    if seconds is not None:
        argv += ["-t", str(seconds)]
    else:
        argv += ["-frames:v", "1"]
    argv += ["-c:v", "mpeg4", "-g", str(FPS // 2), "-f", "rtp"]
    if sdp_path:
        argv += ["-sdp_file", str(sdp_path)]
    host = f"[{dest_host}]" if ":" in dest_host else dest_host
    argv.append(f"rtp://{host}:{dest_port}?localrtpport={local_port}"
                f"&localrtcpport={local_port + 1}&pkt_size=1200")
    return argv


def receiver_sdp(testbed, sender_host, workdir, peer_ip, receive_port):
    """The SDP a receiver needs: ffmpeg writes the stream's SDP (with the
    decoder configuration) in a one-frame dry run to the loopback, then the
    port and address are set to what the receiver sees."""
    dry = workdir / "sender.sdp"
    testbed.run_in(sender_host, _sender_argv("127.0.0.1", 9, 40000, None, dry))
    text = dry.read_text()
    family = "IP6" if ":" in peer_ip else "IP4"
    text = re.sub(r"^c=IN IP[46] \S+", f"c=IN {family} {peer_ip}", text, flags=re.M)
    text = re.sub(r"^m=video \d+ ", f"m=video {receive_port} ", text, flags=re.M)
    path = workdir / "receiver.sdp"
    path.write_text(text)
    return path


def stream(testbed, sender_host, dest_ip, dest_port, sender_port, receiver_host, sdp_path,
           workdir, seconds=4):
    """Streams `seconds` of video from sender_host to dest_ip:dest_port while
    receiver_host decodes what arrives per sdp_path. Returns (frames sent,
    frames decoded)."""
    frames_out = workdir / "frames.txt"
    rx = testbed.popen(receiver_host, [
        "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
        "-protocol_whitelist", "file,udp,rtp", "-reorder_queue_size", "0",
        "-i", sdp_path, "-f", "framecrc", "-flush_packets", "1", "-y", frames_out],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)  # the receiver binds its ports
        tx = testbed.run_in(sender_host, _sender_argv(dest_ip, dest_port, sender_port, seconds),
                            timeout=seconds + 30)
        assert tx.returncode == 0, tx.stderr
        time.sleep(1.0)  # the tail of the stream in flight
    finally:
        # ffmpeg notices SIGINT only when its RTP read times out (10 s), so
        # after a grace second it is killed; each frame line is flushed.
        if rx.poll() is None:
            rx.send_signal(signal.SIGINT)
        try:
            _, err = rx.communicate(timeout=1)
        except subprocess.TimeoutExpired:
            rx.kill()
            _, err = rx.communicate()
    frames = 0
    if frames_out.exists():
        frames = sum(1 for line in frames_out.read_text().splitlines()
                     if line and not line.startswith("#"))
    print(f"ffmpeg receiver: {frames} frames decoded; stderr:\n{err}")
    return seconds * FPS, frames
