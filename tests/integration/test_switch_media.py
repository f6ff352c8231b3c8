"""A real media tool through tandem-switch: ffmpeg sends RTP video from one
participant, another ffmpeg receives it through the switch and decodes it."""
from helpers import rtp
from helpers.netns import VIP4


def test_ffmpeg_rtp_video_is_decoded_through_the_switch(meeting):
    sender, receiver = meeting.members[0], meeting.members[1]
    # Sender: its port 5000 <-> VIP:20000; receiver: its port 6000 <-> VIP:20001.
    meeting.tables.apply(f"""role active 1
vip {VIP4}
meeting 1 1
leg 101 1 video {sender.ip4}:5000 {VIP4}:20000 send,recv 1
leg 102 1 video {receiver.ip4}:6000 {VIP4}:20001 send,recv 2
""")
    workdir = meeting.bed.tmpdir("rtp")
    # The receiver sees the stream come from the VIP, to its own port 6000.
    sdp = rtp.receiver_sdp(meeting.bed, sender, workdir, VIP4, 6000)
    sent, decoded = rtp.stream(meeting.bed, sender, VIP4, 20000, 5000, receiver, sdp, workdir,
                               seconds=4)
    assert decoded > 0.8 * sent, f"{decoded} of {sent} frames decoded"
    assert decoded <= sent
    assert meeting.switch.alive()
