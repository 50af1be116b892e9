#!/usr/bin/env python3
"""Makes Tests/ImagesTests/Fixtures: sample photos, edge-case images, bad files, and Pillow/transformers references.

Needs: pip install pillow scikit-image numpy safetensors transformers (torch optional; the PIL backend of
CLIPImageProcessor is used explicitly so results do not depend on torchvision being installed).

Photos are scikit-image's public-domain samples (astronaut, coffee, chelsea, rocket), downscaled to <= 128 px on
the longest side (LANCZOS) to keep the fixtures small, and saved as JPEG (quality 90) and PNG.

references.safetensors holds, for every decodable fixture F:
  decode/F          U8 [H, W, 3]  np.asarray(Image.open(F).convert("RGB"))  (no EXIF transpose, as transformers)
  decode_exif/F     U8 [H, W, 3]  ImageOps.exif_transpose(...) then convert("RGB")  (only for the EXIF fixture)
  clip64/F          F32 [3, 64, 64]  CLIPImageProcessor(size={shortest_edge: 64}, crop_size=64) pixel_values (photos)
  clip224/coffee.png F32 [3, 224, 224] CLIPImageProcessor defaults pixel_values
"""
import io, os, struct, zlib, json
import numpy as np
from PIL import Image, ImageOps
from safetensors.numpy import save_file
import skimage.data

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "Tests", "ImagesTests", "Fixtures")
os.makedirs(OUT, exist_ok=True)


def path(name):
    return os.path.join(OUT, name)


def small(arr, longest=128):
    im = Image.fromarray(arr).convert("RGB")
    s = longest / max(im.size)
    if s < 1:
        im = im.resize((max(1, round(im.width * s)), max(1, round(im.height * s))), Image.LANCZOS)
    return im


photos = {}
for name in ["astronaut", "coffee", "chelsea", "rocket"]:
    im = small(getattr(skimage.data, name)())
    im.save(path(f"{name}.jpg"), quality=90)
    im.save(path(f"{name}.png"))
    photos[name] = im

rng = np.random.default_rng(0)
base = np.asarray(photos["chelsea"])  # H x W x 3
h, w = base.shape[:2]
# Grayscale, gray+alpha, RGBA, palette.
Image.fromarray(base).convert("L").save(path("gray.png"))
alpha = (np.arange(w)[None, :] * 255 // max(1, w - 1) * np.ones((h, 1))).astype(np.uint8)
Image.fromarray(np.dstack([np.asarray(Image.fromarray(base).convert("L")), alpha]), "LA").save(path("gray_alpha.png"))
Image.fromarray(np.dstack([base, alpha]), "RGBA").save(path("rgba.png"))
Image.fromarray(base).quantize(colors=64).save(path("palette.png"))
# Grayscale JPEG.
Image.fromarray(base).convert("L").save(path("gray.jpg"), quality=90)


# 16-bit RGB PNG written by hand (Pillow cannot write 16-bit RGB): values v*257 + noise in the low byte.
def write_png16(p, rgb16):
    hh, ww, _ = rgb16.shape
    raw = b"".join(b"\x00" + rgb16[y].astype(">u2").tobytes() for y in range(hh))
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", ww, hh, 16, 2, 0, 0, 0))
    data += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    open(p, "wb").write(data)


rgb16 = base.astype(np.uint16) * 256 + rng.integers(0, 256, base.shape).astype(np.uint16)
write_png16(path("rgb16.png"), rgb16)

# CMYK JPEG (Pillow writes an Adobe APP14 marker and inverted CMYK, as Photoshop does).
Image.fromarray(base).convert("CMYK").save(path("cmyk.jpg"), quality=90)

# EXIF orientation 6 (the stored pixels must be rotated 90 degrees clockwise to display).
exif = Image.Exif()
exif[0x0112] = 6
photos["rocket"].save(path("exif6.jpg"), quality=90, exif=exif)

# Progressive JPEG (exercises libjpeg's multi-scan path).
photos["astronaut"].save(path("progressive.jpg"), quality=90, progressive=True)

# Bad files.
jpg = open(path("astronaut.jpg"), "rb").read()
open(path("truncated.jpg"), "wb").write(jpg[: len(jpg) // 2])
png = open(path("astronaut.png"), "rb").read()
open(path("truncated.png"), "wb").write(png[: len(png) // 2])
open(path("garbage.bin"), "wb").write(rng.integers(0, 256, 1000).astype(np.uint8).tobytes())
open(path("empty.jpg"), "wb").write(b"")

refs = {}
decodable = [f"{n}.{e}" for n in photos for e in ("jpg", "png")] + [
    "gray.png", "gray_alpha.png", "rgba.png", "palette.png", "gray.jpg", "rgb16.png", "cmyk.jpg", "exif6.jpg", "progressive.jpg"]
for f in decodable:
    im = Image.open(path(f))
    refs[f"decode/{f}"] = np.ascontiguousarray(np.asarray(im.convert("RGB")))
refs["decode_exif/exif6.jpg"] = np.ascontiguousarray(np.asarray(ImageOps.exif_transpose(Image.open(path("exif6.jpg"))).convert("RGB")))

from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
small_proc = CLIPImageProcessorPil(size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64})
default_proc = CLIPImageProcessorPil()
for n in photos:
    for e in ("jpg", "png"):
        f = f"{n}.{e}"
        im = Image.open(path(f)).convert("RGB")
        refs[f"clip64/{f}"] = np.ascontiguousarray(small_proc(images=im, return_tensors="np")["pixel_values"][0].astype(np.float32))
im = Image.open(path("coffee.png")).convert("RGB")
refs["clip224/coffee.png"] = np.ascontiguousarray(default_proc(images=im, return_tensors="np")["pixel_values"][0].astype(np.float32))
save_file(refs, path("references.safetensors"))
json.dump(small_proc.to_dict(), open(path("preprocessor_config_64.json"), "w"), indent=2)
total = sum(os.path.getsize(path(f)) for f in os.listdir(OUT))
print(f"wrote {len(os.listdir(OUT))} files, {total / 1e6:.2f} MB to {OUT}")
