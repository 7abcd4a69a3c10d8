#!/usr/bin/python3
"""An IP camera for the RTSP pull tests: GStreamer's RTSP server (Debian's
gir1.2-gst-rtsp-server-1.0, driven through python3-gi) serving a live test
pattern at rtsp://127.0.0.1:<port>/<path>.

Video: 320x240 at 30 fps, H.264 (x264enc, zerolatency, a keyframe a second)
or H.265 (x265enc). Audio: AAC (avenc_aac, RTP mpeg4-generic), G.711 (PCMU),
or none. With --user/--password the server asks for Basic authentication.

Prints "ready <url>" (without credentials) once it listens, and "client
connected" / "client closed" as RTSP clients come and go (the on-demand test
reads them: the camera's own view of the origin's calls). Run with
Debian's python3 (/usr/bin/python3): the gi bindings are Debian packages.
"""
import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

VIDEO = {
    "h264": "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 bitrate=400 "
    "! video/x-h264,profile=baseline ! rtph264pay name=pay0 pt=96 config-interval=-1",
    "h265": "x265enc tune=zerolatency speed-preset=ultrafast key-int-max=30 bitrate=400 "
    "! rtph265pay name=pay0 pt=96 config-interval=-1",
}
AUDIO = {
    "aac": "audiotestsrc is-live=true wave=sine freq=440 ! audioconvert ! audioresample "
    "! audio/x-raw,rate=48000,channels=2 ! avenc_aac bitrate=64000 ! rtpmp4gpay name=pay1 pt=97",
    "pcmu": "audiotestsrc is-live=true wave=sine freq=440 ! audioconvert ! audioresample "
    "! audio/x-raw,rate=8000,channels=1 ! mulawenc ! rtppcmupay name=pay1 pt=0",
    "none": "",
}


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", type=int, default=8554)
    p.add_argument("--path", default="/cam")
    p.add_argument("--video", choices=VIDEO, default="h264")
    p.add_argument("--audio", choices=AUDIO, default="aac")
    p.add_argument("--user")
    p.add_argument("--password")
    args = p.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    launch = (
        "( videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 "
        f"! videoconvert ! {VIDEO[args.video]} {AUDIO[args.audio]} )"
    )
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    # One encoder for every client; a client that comes back gets the same
    # live stream, as from a camera.
    factory.set_shared(True)
    if args.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "viewer")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password or ""), token)
        server.set_auth(auth)
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_permission_for_role("viewer", "media.factory.access", True)
        permissions.add_permission_for_role("viewer", "media.factory.construct", True)
        factory.set_permissions(permissions)
    server.get_mount_points().add_factory(args.path, factory)

    def on_client(_server, client):
        print("client connected", flush=True)
        client.connect("closed", lambda _c: print("client closed", flush=True))

    server.connect("client-connected", on_client)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        sys.exit(1)
    loop = GLib.MainLoop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print(f"ready rtsp://127.0.0.1:{args.port}{args.path}", flush=True)
    loop.run()


if __name__ == "__main__":
    main()
