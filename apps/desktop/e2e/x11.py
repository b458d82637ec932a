#!/usr/bin/env python3
"""Acts on the app's top-level X11 window as a person (or a window manager) would.

  x11.py close TITLE   send WM_DELETE_WINDOW (the title bar's close button)
  x11.py state TITLE   print "viewable", "unmapped" or "missing"
  x11.py shot TITLE F  save the window as it is painted on screen to the PNG file F

Used by the desktop e2e under Xvfb, where no window manager runs.
"""
import struct
import sys
import zlib

from Xlib import X, display, protocol


def windows(d, title):
    found = []

    def walk(w):
        try:
            name = w.get_wm_name()
            net = w.get_full_property(d.intern_atom("_NET_WM_NAME"), d.intern_atom("UTF8_STRING"))
            if net is not None:
                name = net.value.decode("utf-8", "replace")
            if name == title:
                found.append(w)
            for child in w.query_tree().children:
                walk(child)
        except Exception:
            pass

    walk(d.screen().root)
    return found


def write_png(path, width, height, bgrx):
    """Writes 32-bit BGRX pixels (what a 24-bit X server gives) as an RGB PNG."""
    rows = bytearray()
    stride = width * 4
    for y in range(height):
        rows.append(0)
        line = bgrx[y * stride:(y + 1) * stride]
        rgb = bytearray(width * 3)
        rgb[0::3] = line[2::4]
        rgb[1::3] = line[1::4]
        rgb[2::3] = line[0::4]
        rows += rgb

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(rows), 6)) + chunk(b"IEND", b""))


def main():
    action, title = sys.argv[1], sys.argv[2]
    d = display.Display()
    found = windows(d, title)
    if action == "state":
        if not found:
            print("missing")
        elif any(w.get_attributes().map_state == X.IsViewable for w in found):
            print("viewable")
        else:
            print("unmapped")
        return 0
    if action == "shot":
        targets = [w for w in found if w.get_attributes().map_state == X.IsViewable]
        if not targets:
            print(f"no viewable window titled {title!r}", file=sys.stderr)
            return 1
        w = max(targets, key=lambda t: t.get_geometry().width * t.get_geometry().height)
        g = w.get_geometry()
        raw = w.get_image(0, 0, g.width, g.height, X.ZPixmap, 0xFFFFFFFF).data
        write_png(sys.argv[3], g.width, g.height, raw)
        print(f"{g.width}x{g.height}")
        return 0
    if action == "close":
        targets = [w for w in found if w.get_attributes().map_state == X.IsViewable]
        if not targets:
            print(f"no viewable window titled {title!r}", file=sys.stderr)
            return 1
        protocols = d.intern_atom("WM_PROTOCOLS")
        delete = d.intern_atom("WM_DELETE_WINDOW")
        for w in targets:
            ev = protocol.event.ClientMessage(
                window=w, client_type=protocols, data=(32, [delete, X.CurrentTime, 0, 0, 0])
            )
            w.send_event(ev)
        d.flush()
        print(f"closed {len(targets)}")
        return 0
    print(f"unknown action {action!r}", file=sys.stderr)
    return 2


sys.exit(main())
