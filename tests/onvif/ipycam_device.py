#!/usr/bin/env python3
"""Test-only launcher: ipycam's ONVIF device (SOAP handler, WS-Security check,
PTZ controller) on 127.0.0.1 only, without video, WS-Discovery multicast, go2rtc
or the web UI's streaming pipeline.

The ONVIF logic (request routing, UsernameToken PasswordDigest check, Created
freshness window of +-300 s, PTZ state machine and presets) is ipycam's own; this
wrapper only (1) binds a loopback port, (2) can offset the device's clock, and
(3) optionally lets GetSystemDateAndTime through without a token, as the ONVIF
Core spec requires (PRE_AUTH) and ipycam does not.

Usage:
  python ipycam_device.py --port 0 --user admin --password secret \
      [--clock-offset 3600] [--strict-datetime-auth] [--state-dir DIR]
Prints "LISTENING 127.0.0.1:<port>" on stdout once it accepts connections.
"""
import argparse
import datetime as _dt
import os
import socketserver
import sys
import tempfile
import threading
import time as _time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--port', type=int, default=0)
    ap.add_argument('--user', default='admin')
    ap.add_argument('--password', default='')
    ap.add_argument('--clock-offset', type=float, default=0.0,
                    help='seconds added to the device clock (GetSystemDateAndTime '
                         'and the WS-Security Created check)')
    ap.add_argument('--strict-datetime-auth', action='store_true',
                    help="keep ipycam's behaviour: GetSystemDateAndTime needs a token too")
    ap.add_argument('--raw', action='store_true',
                    help="serve ipycam's responses unpatched (undeclared ptz:/tptz: "
                         "prefixes, GetStatus MoveStatus/UtcTime left as {{placeholders}})")
    ap.add_argument('--state-dir', default=None,
                    help='cwd for ptz_presets.json (default: a fresh temp dir)')
    args = ap.parse_args()

    # Presets are persisted to ./ptz_presets.json: isolate every device instance.
    os.chdir(args.state_dir or tempfile.mkdtemp(prefix='ipycam-'))

    import ipycam.onvif as onvif_mod
    from ipycam.config import CameraConfig
    from ipycam.ptz import PTZController
    from ipycam.onvif import ONVIFService
    from ipycam.http import IPCameraHTTPHandler

    off = args.clock_offset
    if off:
        class _FakeTime:
            def __getattr__(self, name):
                return getattr(_time, name)

            @staticmethod
            def gmtime(secs=None):
                return _time.gmtime((_time.time() if secs is None else secs) + off)

        class _FakeDatetime(_dt.datetime):
            @classmethod
            def now(cls, tz=None):
                return _dt.datetime.now(tz) + _dt.timedelta(seconds=off)

        # Only ipycam.onvif's view of the clock moves (the PTZ motion loop keeps
        # the real monotonic-ish time.time()).
        onvif_mod.time = _FakeTime()
        onvif_mod.datetime = _FakeDatetime

    config = CameraConfig(local_ip='127.0.0.1', onvif_port=args.port)
    if args.password:
        config.set_credentials(args.user, args.password)

    ptz = PTZController(output_width=config.main_width,
                        output_height=config.main_height, max_zoom=4.0)
    service = ONVIFService(config, ptz)

    if not args.raw:
        # ipycam 1.3.0 bugs, fixed here so a namespace-aware client can parse:
        # PTZ replies use the prefixes ptz: and tptz: which its envelope never
        # declares, and GetStatus leaves MoveStatus/UtcTime as {{placeholders}}.
        env = service._templates['envelope']
        service._templates['envelope'] = env.replace(
            'xmlns:trt="http://www.onvif.org/ver10/media/wsdl"',
            'xmlns:trt="http://www.onvif.org/ver10/media/wsdl" '
            'xmlns:ptz="http://www.onvif.org/ver20/ptz/wsdl" '
            'xmlns:tptz="http://www.onvif.org/ver20/ptz/wsdl"', 1)
        orig_render = service._render

        def render(name, _orig=orig_render, **kw):
            if name == 'ptz_get_status':
                mv = kw.pop('move_status', 'IDLE')
                kw.setdefault('pan_tilt_status', mv)
                kw.setdefault('zoom_status', mv)
                kw.setdefault('utc_time', _time.strftime(
                    '%Y-%m-%dT%H:%M:%SZ', onvif_mod.time.gmtime()))
            return _orig(name, **kw)
        service._render = render

    if not args.strict_datetime_auth:
        orig_verify = service.verify_usernametoken

        def verify(body, _orig=orig_verify):
            if 'GetSystemDateAndTime' in body:
                return True
            return _orig(body)
        service.verify_usernametoken = verify

    class Camera:  # the attributes IPCameraHTTPHandler uses on the ONVIF path
        pass
    cam = Camera()
    cam.config, cam.onvif, cam.ptz = config, service, ptz
    IPCameraHTTPHandler.camera = cam

    class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
        daemon_threads = True
        allow_reuse_address = True
        request_queue_size = 64

    srv = Server(('127.0.0.1', args.port), IPCameraHTTPHandler)
    port = srv.server_address[1]
    config.onvif_port = port  # so GetCapabilities/GetServices advertise it
    print(f'LISTENING 127.0.0.1:{port}', flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        ptz.stop()


if __name__ == '__main__':
    main()
