#!/usr/bin/env python3
"""Writes the procedural example inputs of `varlab edit` (no downloads): a small landscape picture and masks.
Standard library only. Run from anywhere: python3 assets/examples/make_examples.py"""
import math, os, struct, zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def write_png(path, w, h, rows, channels):
    raw = b"".join(b"\x00" + bytes(r) for r in rows)
    color = {1: 0, 3: 2}[channels]
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0))
    data += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(data)


def scene(w, h):
    rows = []
    for y in range(h):
        row = []
        for x in range(w):
            v = y / (h - 1)
            r, g, b = 90 + 80 * v, 150 + 60 * v, 235 - 30 * v               # sky gradient
            if (x - 0.75 * w) ** 2 + (y - 0.25 * h) ** 2 < (0.12 * h) ** 2:  # sun
                r, g, b = 255, 210, 60
            hill = 0.62 * h + 0.08 * h * math.sin(2 * math.pi * x / w * 1.5)
            if y > hill:                                                     # grass with stripes
                s = 20 * math.sin(x * 0.7 + y * 0.3)
                r, g, b = 60 + s, 150 + s, 55
            if 0.25 * w < x < 0.45 * w and 0.45 * h < y < 0.8 * h:           # house
                r, g, b = 180, 60, 50
                if 0.31 * w < x < 0.37 * w and 0.6 * h < y < 0.8 * h:        # door
                    r, g, b = 90, 50, 30
            if abs(x - 0.35 * w) < (y - 0.28 * h) * 0.9 and 0.28 * h < y <= 0.45 * h:  # roof
                r, g, b = 110, 40, 40
            row += [max(0, min(255, int(round(c)))) for c in (r, g, b)]
        rows.append(row)
    return rows


def mask(w, h, inside, soft=False):
    rows = []
    for y in range(h):
        row = []
        for x in range(w):
            d = inside(x + 0.5, y + 0.5)
            row.append(int(255 * d) if soft else (255 if d >= 0.5 else 0))
        rows.append(row)
    return rows


W, H = 96, 64
write_png(os.path.join(HERE, "scene.png"), W, H, scene(W, H), 3)
# the house (white = regenerate)
write_png(os.path.join(HERE, "mask_house.png"), W, H,
          mask(W, H, lambda x, y: 1.0 if 0.22 * W < x < 0.48 * W and 0.25 * H < y < 0.85 * H else 0.0), 1)
# a soft (non-binary) blob around the sun: thresholded at 0.5 by `edit`
write_png(os.path.join(HERE, "mask_sun_soft.png"), W, H,
          mask(W, H, lambda x, y: max(0.0, 1 - math.hypot(x - 0.75 * W, y - 0.25 * H) / (0.3 * H)), soft=True), 1)
print("wrote scene.png, mask_house.png, mask_sun_soft.png to", HERE)
