"""Write tests/data/gfpgan_v1.4_keys.txt: every tensor of the public GFPGAN v1.3/v1.4 checkpoints.

Derived by plain arithmetic from the published configuration of the "clean" network (out_size
512, num_style_feat 512, channel_multiplier 2, narrow 1, num_mlp 8, different_w, sft_half),
without torch and without heygemd's module, so the test compares two derivations rather than
one with itself. Keys come in torch's state_dict order (a module's own parameters, then its
buffers, then its children in the order they were created).

Cross-check against the published files: the listed tensors hold 87,143,276 float32 values,
348,573,104 bytes; GFPGANv1.3.pth and GFPGANv1.4.pth are both 348,632,874 bytes, i.e. these
tensors once (under "params_ema") plus about 60 kB of zip and pickle framing.

Run once from the repository root:  python tests/data/make_gfpgan_keys.py
"""

from __future__ import annotations

from math import prod
from pathlib import Path

OUT = Path(__file__).with_name("gfpgan_v1.4_keys.txt")
STYLE = 512
LOG_SIZE = 9  # 512 = 2**9


def stylegan_width(size: int) -> int:
    return {4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256, 256: 128, 512: 64}[size]


def unet_width(size: int) -> int:
    return stylegan_width(size) // 2


def conv(name: str, cin: int, cout: int, k: int, bias: bool = True) -> list[tuple[str, tuple[int, ...]]]:
    entries = [(f"{name}.weight", (cout, cin, k, k))]
    return entries + ([(f"{name}.bias", (cout,))] if bias else [])


def linear(name: str, cin: int, cout: int) -> list[tuple[str, tuple[int, ...]]]:
    return [(f"{name}.weight", (cout, cin)), (f"{name}.bias", (cout,))]


def modulated(name: str, cin: int, cout: int, k: int) -> list[tuple[str, tuple[int, ...]]]:
    return [(f"{name}.weight", (1, cout, cin, k, k)), *linear(f"{name}.modulation", STYLE, cin)]


def style_conv(name: str, cin: int, cout: int) -> list[tuple[str, tuple[int, ...]]]:
    return [(f"{name}.weight", (1,)), (f"{name}.bias", (1, cout, 1, 1)), *modulated(f"{name}.modulated_conv", cin, cout, 3)]


def to_rgb(name: str, cin: int) -> list[tuple[str, tuple[int, ...]]]:
    return [(f"{name}.bias", (1, 3, 1, 1)), *modulated(f"{name}.modulated_conv", cin, 3, 1)]


def res_block(name: str, cin: int, cout: int) -> list[tuple[str, tuple[int, ...]]]:
    return [
        *conv(f"{name}.conv1", cin, cin, 3),
        *conv(f"{name}.conv2", cin, cout, 3),
        *conv(f"{name}.skip", cin, cout, 1, bias=False),
    ]


def entries() -> list[tuple[str, tuple[int, ...]]]:
    sizes_up = [2**level for level in range(3, LOG_SIZE + 1)]  # 8 ... 512
    out: list[tuple[str, tuple[int, ...]]] = conv("conv_body_first", 3, unet_width(512), 1)
    width = unet_width(512)
    for index, size in enumerate(reversed([2**level for level in range(2, LOG_SIZE)])):  # 256 ... 4
        out += res_block(f"conv_body_down.{index}", width, unet_width(size))
        width = unet_width(size)
    out += conv("final_conv", width, unet_width(4), 3)
    width = unet_width(4)
    for index, size in enumerate(sizes_up):
        out += res_block(f"conv_body_up.{index}", width, unet_width(size))
        width = unet_width(size)
    for index, size in enumerate(sizes_up):
        out += conv(f"toRGB.{index}", unet_width(size), 3, 1)
    out += linear("final_linear", unet_width(4) * 16, (2 * LOG_SIZE - 2) * STYLE)

    decoder = "stylegan_decoder"
    for index in range(1, 16, 2):
        out += linear(f"{decoder}.style_mlp.{index}", STYLE, STYLE)
    out += [(f"{decoder}.constant_input.weight", (1, 512, 4, 4))]
    out += style_conv(f"{decoder}.style_conv1", 512, 512)
    out += to_rgb(f"{decoder}.to_rgb1", 512)
    width = 512
    for index, size in enumerate(sizes_up):
        out += style_conv(f"{decoder}.style_convs.{2 * index}", width, stylegan_width(size))
        out += style_conv(f"{decoder}.style_convs.{2 * index + 1}", stylegan_width(size), stylegan_width(size))
        width = stylegan_width(size)
    for index, size in enumerate(sizes_up):
        out += to_rgb(f"{decoder}.to_rgbs.{index}", stylegan_width(size))
    noise_sides = [4] + [size for size in sizes_up for _ in range(2)]
    out += [(f"{decoder}.noises.noise{index}", (1, 1, side, side)) for index, side in enumerate(noise_sides)]

    for branch in ("condition_scale", "condition_shift"):
        for index, size in enumerate(sizes_up):
            width = unet_width(size)
            out += conv(f"{branch}.{index}.0", width, width, 3) + conv(f"{branch}.{index}.2", width, width, 3)
    return out


def main() -> None:
    listed = entries()
    values = sum(prod(shape) for _, shape in listed)
    header = [
        "# GFPGAN v1.3 / v1.4 (clean) checkpoint: the tensors under params_ema, in state_dict order.",
        "# Written by tests/data/make_gfpgan_keys.py from the published configuration.",
        f"# {len(listed)} tensors, {values} float32 values ({values * 4} bytes).",
        "# key<TAB>shape",
    ]
    lines = [f"{key}\t{'x'.join(map(str, shape))}" for key, shape in listed]
    OUT.write_text("\n".join(header + lines) + "\n", encoding="utf-8")
    print(f"wrote {OUT}: {len(listed)} tensors, {values} values")


if __name__ == "__main__":
    main()
