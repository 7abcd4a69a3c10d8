#!/usr/bin/env python3
"""Writes the seed corpora of origin/fuzz (run from anywhere; deterministic).

whip_rtp seeds are the step encoding of fuzz_targets/whip_rtp.rs: a browser-like
H.264 stream (STAP-A SPS+PPS, FU-A IDR, single-NAL P frames) with Opus beside it,
and the same with loss, reordering and a garbage datagram. whip_frames seeds
follow fuzz_targets/whip_frames.rs. whip_offer gets Chromium's captured offers
and a STUN binding request. srt_streamid gets the stream ids encoders send
(docs/srt.md); http_query the LL-HLS queries and ranges players send, after
the 8-byte body length of fuzz_targets/http_query.rs. rtsp_media seeds follow
fuzz_targets/rtsp_media.rs:
a camera's H.264 (avcC) + AAC (AudioSpecificConfig); and an avcC offered as
H.265 (refused), loss, a step back, a bad NAL length and a clock jump.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
SPS = bytes([0x67, 0x42, 0xc0, 0x1f, 0xd9, 0x00, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03,
             0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x0f, 0x18, 0x32, 0x48])
PPS = bytes([0x68, 0xcb, 0x83, 0xcb, 0x20])


def body(n, seed):
    return bytes((seed * 31 + i * 7) % 250 + 1 for i in range(n))


def rtp_step(op, payload, seq=1, ts=0, run_ms=0, marker=False):
    head = bytes([op | (0x80 if marker else 0), seq & 0xff]) + struct.pack('>H', ts) \
        + bytes([run_ms]) + struct.pack('>H', len(payload))
    return head + payload


def h264_frame(n, idr):
    """RTP payloads of one frame: STAP-A parameter sets + FU-A IDR, or one NAL."""
    if not idr:
        return [bytes([0x41]) + body(300, n)]
    stap = bytes([0x78]) + struct.pack('>H', len(SPS)) + SPS + struct.pack('>H', len(PPS)) + PPS
    idr_nal = body(2400, n)
    fu = [idr_nal[i:i + 1000] for i in range(0, len(idr_nal), 1000)]
    out = [stap]
    for i, chunk in enumerate(fu):
        s = 0x80 if i == 0 else 0
        e = 0x40 if i == len(fu) - 1 else 0
        out.append(bytes([0x7c, s | e | 5]) + chunk)
    return out


def browser(frames=40, lose=(), swap=(), garbage=False):
    steps = []
    for n in range(frames):
        payloads = h264_frame(n, n % 20 == 0)
        for i, p in enumerate(payloads):
            ts = 3000 if i == 0 and n > 0 else 0
            steps.append(rtp_step(0, p, seq=1, ts=ts, run_ms=0, marker=i == len(payloads) - 1))
        # ~1.5 Opus packets per video frame at 30 fps
        for _ in range(2 if n % 2 else 1):
            steps.append(rtp_step(1, bytes([0xf8]) + body(60, n), seq=1, ts=960, run_ms=16))
        if garbage and n == 10:
            steps.append(rtp_step(2, bytes([0x80, 0xc8]) + body(40, 9)))
    for i in lose:
        steps[i] = rtp_step(3, b'', run_ms=1)
    for i in swap:
        steps[i], steps[i + 1] = steps[i + 1], steps[i]
    return b''.join(steps)


def frames_step(flags, rtp_step_, ms, payload):
    return bytes([flags]) + struct.pack('>H', rtp_step_) + bytes([ms, 3, 9]) \
        + struct.pack('>H', len(payload)) + payload


def write(target, name, data):
    d = os.path.join(HERE, 'corpus', target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data)


write('whip_rtp', 'browser_h264_opus', browser())
write('whip_rtp', 'browser_loss_reorder_garbage', browser(lose=(5, 30, 31), swap=(12, 50), garbage=True))

av = b'\x00'
for n in range(60):
    flags = 0x08 if n % 30 == 0 else 0
    flags |= 0x04 if n == 20 else 0
    av += frames_step(flags, 3000, 33, bytes([0x41]) + body(200, n))
    av += frames_step(0x01 | (0x04 if n == 25 else 0), 1600, 0, bytes([0xf8]) + body(40, n))
write('whip_frames', 'av_reports', av)
write('whip_frames', 'loss_and_jump', b'\x00' + frames_step(0x08, 0, 1, b'\x88') + frames_step(0x02, 3000, 33, b'\x41\x01')
      + frames_step(0x88, 60000, 10, b'\x99') + frames_step(0x01, 960, 20, b'\xf8\x01\x02'))

for name in ('chromium_whip_offer.sdp', 'chromium_whip_offer_vp8.sdp'):
    with open(os.path.join(HERE, '..', 'tests', 'fixtures', name), 'rb') as f:
        write('whip_offer', name, f.read())
username = b'EkR331HNpnPTSp6Q:y3NF'
attrs = struct.pack('>HH', 6, len(username)) + username + b'\0' * ((4 - len(username) % 4) % 4)
write('whip_offer', 'stun_binding_request',
      struct.pack('>HH', 1, len(attrs)) + bytes([0x21, 0x12, 0xa4, 0x42]) + bytes(12) + attrs)

for name, sid in [
    ('ffmpeg_prefixed', b'publish:live/cam1:dev-key'),
    ('access_control', b'#!::r=live/cam1,m=publish,s=s3cret-Key_1'),
    ('access_control_extra_keys', b'#!::u=alice,h=example.com,r=live/cam2,t=stream,acme_x=1'),
    ('obs_resource_only', b'#!::r=cam1'),
    ('plain_with_key', b'cam1:k3y=with:colons'),
    ('request_mode', b'request:live/cam1'),
    ('key_is_the_mask', b'e:***'),
]:
    write('srt_streamid', name, sid)

for name, length, text in [
    ('blocking_reload', 0, b'_HLS_msn=1234&_HLS_part=3'),
    ('delta_update', 0, b'_HLS_msn=17&_HLS_part=0&_HLS_skip=YES'),
    ('delta_v2_token', 0, b'__token__=exp%3D1~acl%3D%2Flive%2Fcam1%2F*~hmac%3D00&_HLS_skip=v2'),
    ('range_first_last', 27_000, b'bytes=0-1023'),
    ('range_open', 27_000, b'bytes=26000-'),
    ('range_suffix', 27_000, b'bytes=-500'),
]:
    write('http_query', name, struct.pack('>Q', length) + text)

def rtsp_step(kind, ts_step, arrival_ms, flags, payload):
    return bytes([kind]) + struct.pack('>iHBH', ts_step, arrival_ms, flags, len(payload)) + payload


def length_prefixed(*nals):
    return b''.join(struct.pack('>I', len(n)) + n for n in nals)


AVCC = bytes([1, SPS[1], SPS[2], SPS[3], 0xff, 0xe1]) + struct.pack('>H', len(SPS)) + SPS \
    + bytes([1]) + struct.pack('>H', len(PPS)) + PPS
ASC = bytes([0x11, 0x90])  # AAC-LC, 48 kHz, stereo
camera = rtsp_step(0, 0, 0, 0, AVCC) + rtsp_step(2, 0, 0, 0, ASC)
for n in range(60):
    key = n % 30 == 0
    nal = (b'\x65' if key else b'\x41') + body(300 if key else 80, n)
    camera += rtsp_step(3, 3000, 33, 1 if key else 0, length_prefixed(nal))
    camera += rtsp_step(4, 1024, 21, 0, b'\x21' + body(30, n))
write('rtsp_media', 'camera_h264_aac', camera)
lossy = rtsp_step(1, 0, 0, 0, AVCC) + rtsp_step(0, 0, 0, 0, AVCC) \
    + rtsp_step(3, 0, 0, 1, length_prefixed(b'\x65' + body(50, 1))) \
    + rtsp_step(3, 3000, 33, 0x06, length_prefixed(b'\x41' + body(20, 2))) \
    + rtsp_step(3, -6000, 33, 0, length_prefixed(b'\x41' + body(20, 3))) \
    + rtsp_step(3, 3000, 33, 1, struct.pack('>I', 99) + b'\x65') \
    + rtsp_step(2, 0, 0, 0, ASC) + rtsp_step(4, 1024, 10, 0, b'\x21\x00') \
    + rtsp_step(3, 3000, 33, 1, length_prefixed(b'\x65' + body(50, 4))) \
    + rtsp_step(4, 0, 10, 0, b'\x21\x00') + rtsp_step(3, 0x7fffffff, 1, 1, length_prefixed(b'\x65'))
write('rtsp_media', 'loss_reorder_jump', lossy)
